"""The reaper on a real (SQLite) database: lost leases, the attempt cap, live leases, unclaimed stages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from shared import jobs
from shared.auth import LOCAL_ADMIN
from shared.db import session_scope
from shared.models import Job, Stage, utcnow
from shared.schemas import JobCreate
from shared.states import claim_stage
from worker.reaper import Reaper


@pytest.fixture
def job_id(embedded, tiny_dataset) -> str:
    spec = JobCreate.model_validate(
        {
            "dataset": tiny_dataset,
            "model": "yolov8n.yaml",
            "stages": [{"type": "train", "epochs": 1, "imgsz": 64}, {"type": "evaluate", "imgsz": 64}],
        }
    )
    with session_scope() as session:
        job, _ = jobs.create_job(session, embedded, spec, LOCAL_ADMIN)
        return job.id


def first_stage(job_id: str) -> int:
    with session_scope() as session:
        return session.get(Job, job_id).stages[0].id


def claim(stage_id: int, worker: str, heartbeat_age_s: float) -> None:
    with session_scope() as session:
        assert claim_stage(session, stage_id, worker)
        session.execute(
            update(Stage).where(Stage.id == stage_id).values(heartbeat_at=utcnow() - timedelta(seconds=heartbeat_age_s))
        )


def snapshot(job_id: str) -> tuple[str, list[tuple[str, int, str | None]]]:
    with session_scope() as session:
        job = session.get(Job, job_id)
        return job.state, [(s.state, s.attempt, s.error) for s in job.stages]


def make_reaper(settings, sent: list[int]) -> Reaper:
    settings.lease_ttl_s, settings.max_stage_attempts, settings.requeue_queued_after_s = 30, 3, 60
    return Reaper(settings, sent.append)


def test_expired_lease_is_queued_again_and_sent(embedded, job_id):
    sent: list[int] = []
    reaper = make_reaper(embedded, sent)
    stage_id = first_stage(job_id)
    claim(stage_id, "dead-worker:1", heartbeat_age_s=31)
    report = reaper.reap_once()
    assert report.requeued == [stage_id] and sent == [stage_id]
    state, stages = snapshot(job_id)
    assert stages[0] == ("queued", 1, None)
    with session_scope() as session:
        assert session.get(Stage, stage_id).worker_id is None
        assert claim_stage(session, stage_id, "live-worker:2")  # the next delivery claims it: attempt 2
    assert snapshot(job_id)[1][0][:2] == ("running", 2)


def test_live_lease_and_second_delivery_are_left_alone(embedded, job_id):
    sent: list[int] = []
    reaper = make_reaper(embedded, sent)
    stage_id = first_stage(job_id)
    claim(stage_id, "live-worker:1", heartbeat_age_s=29)
    report = reaper.reap_once()
    assert report.requeued == report.failed == report.resent == [] and sent == []
    with session_scope() as session:
        assert not claim_stage(session, stage_id, "other-worker:2")  # leased elsewhere and alive: nothing runs
    assert snapshot(job_id)[1][0] == ("running", 1, None)


def test_stage_that_keeps_losing_its_worker_fails_the_job(embedded, job_id):
    sent: list[int] = []
    reaper = make_reaper(embedded, sent)
    stage_id = first_stage(job_id)
    for attempt in (1, 2):
        claim(stage_id, f"worker:{attempt}", heartbeat_age_s=60)
        assert reaper.reap_once().requeued == [stage_id]
    claim(stage_id, "worker:3", heartbeat_age_s=60)
    report = reaper.reap_once()
    assert report.failed == [stage_id] and report.requeued == [] and sent == [stage_id, stage_id]
    state, stages = snapshot(job_id)
    assert state == "failed"
    assert stages[0] == ("failed", 3, "worker lost 3 times (lease expired; attempts capped)")
    assert stages[1][0] == "skipped"
    assert (embedded.artifacts_root / "jobs" / job_id / "summary.json").exists()
    with session_scope() as session:
        assert "worker lost 3 times" in session.get(Job, job_id).error


def test_lost_stage_of_a_cancelled_job_ends_cancelled(embedded, job_id):
    reaper = make_reaper(embedded, [])
    stage_id = first_stage(job_id)
    claim(stage_id, "dead-worker:1", heartbeat_age_s=31)
    with session_scope() as session:
        session.get(Job, job_id).cancel_requested_at = utcnow()
    assert reaper.reap_once().cancelled == [stage_id]
    assert snapshot(job_id)[0] == "cancelled" and [s[0] for s in snapshot(job_id)[1]] == ["cancelled", "cancelled"]


def test_unclaimed_queued_stage_is_resent_once_per_interval(embedded, job_id):
    sent: list[int] = []
    reaper = make_reaper(embedded, sent)
    stage_id = first_stage(job_id)
    assert reaper.reap_once().resent == []  # just queued: the broker has it
    with session_scope() as session:
        session.execute(update(Stage).where(Stage.id == stage_id).values(queued_at=utcnow() - timedelta(seconds=61)))
    assert reaper.reap_once().resent == [stage_id] and sent == [stage_id]
    assert reaper.reap_once().resent == []  # not again before another interval


def test_only_losses_in_a_row_without_progress_count_against_the_cap(embedded, job_id):
    from worker.reporting import StageReporter

    sent: list[int] = []
    reaper = make_reaper(embedded, sent)
    stage_id = first_stage(job_id)
    reporter = StageReporter(stage_id, job_id)
    for kill in range(5):  # five losses, each after a new epoch: the stage is never failed for them
        claim(stage_id, f"worker:{kill}", heartbeat_age_s=0)
        reporter.epoch_row({"epoch": kill + 1, "loss": 1.0 / (kill + 1)}, epochs=10)
        with session_scope() as session:
            session.execute(update(Stage).where(Stage.id == stage_id).values(heartbeat_at=utcnow() - timedelta(seconds=60)))
        assert reaper.reap_once().requeued == [stage_id]
    assert snapshot(job_id)[1][0][:2] == ("queued", 1)
    for attempt in (2, 3):  # then losses without a new epoch in between: the third in a row fails it
        claim(stage_id, f"worker:again{attempt}", heartbeat_age_s=60)
        reporter.epoch_row({"epoch": 5, "loss": 0.2}, epochs=10)  # a repeated epoch is not progress
        report = reaper.reap_once()
    assert report.failed == [stage_id]
    assert snapshot(job_id)[1][0] == ("failed", 3, "worker lost 3 times (lease expired; attempts capped)")


def test_a_stage_process_killed_on_its_own_is_queued_again_within_the_budget(embedded, job_id):
    from worker.pipeline import finish_stage

    embedded.max_stage_attempts = 3
    stage_id = first_stage(job_id)
    for attempt in (1, 2):
        claim(stage_id, "worker:a", heartbeat_age_s=0)
        assert finish_stage(embedded, stage_id, -9, "worker:a") == [stage_id]
        state, stages = snapshot(job_id)
        assert state != "failed" and stages[0][:2] == ("queued", attempt)
    with session_scope() as session:
        kills = session.get(Stage, stage_id).info["process_killed"]
    assert [(k["attempt"], k["signal"]) for k in kills] == [(1, "SIGKILL"), (2, "SIGKILL")]
    claim(stage_id, "worker:a", heartbeat_age_s=0)
    assert finish_stage(embedded, stage_id, -9, "worker:a") == []  # the third kill in a row fails it
    state, stages = snapshot(job_id)
    assert state == "failed" and stages[0][0] == "failed" and "killed by signal SIGKILL" in stages[0][2]
