import pytest

from shared.errors import IllegalTransition
from shared.models import Job, Stage
from shared.states import (
    JOB_TRANSITIONS,
    STAGE_TRANSITIONS,
    JobState,
    StageState,
    can_move_job,
    claim_stage,
    move_job,
    move_stage,
)


def make_job(state=JobState.QUEUED) -> Job:
    return Job(id="a" * 32, name="j", tags=[], state=state.value, dataset="d", model="m", spec={})


def make_stage(state=StageState.PENDING) -> Stage:
    return Stage(job_id="a" * 32, index=0, type="train", state=state.value, spec={}, dir="jobs/x/01-train")


def test_job_happy_path_sets_timestamps():
    job = make_job()
    move_job(job, JobState.RUNNING)
    assert job.state == "running" and job.started_at is not None and job.finished_at is None
    move_job(job, JobState.SUCCEEDED)
    assert job.state == "succeeded" and job.finished_at >= job.started_at


@pytest.mark.parametrize("terminal", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED])
@pytest.mark.parametrize("target", list(JobState))
def test_terminal_job_never_moves(terminal, target):
    job = make_job(terminal)
    with pytest.raises(IllegalTransition):
        move_job(job, target)
    assert job.state == terminal.value


def test_job_cannot_skip_running_to_succeed():
    with pytest.raises(IllegalTransition, match="queued to succeeded"):
        move_job(make_job(), JobState.SUCCEEDED)


def test_failed_job_records_error():
    job = make_job(JobState.RUNNING)
    move_job(job, JobState.FAILED, error="stage 1 (train) failed: boom")
    assert job.error == "stage 1 (train) failed: boom"


def test_every_state_has_a_rule_and_terminal_states_are_sinks():
    assert set(JOB_TRANSITIONS) == set(JobState)
    assert set(STAGE_TRANSITIONS) == set(StageState)
    for state in JobState:
        assert state.is_terminal() == (not JOB_TRANSITIONS[state])
    for state in StageState:
        assert state.is_terminal() == (not STAGE_TRANSITIONS[state])


def test_stage_transitions():
    stage = make_stage()
    with pytest.raises(IllegalTransition):
        move_stage(stage, StageState.RUNNING)  # must be queued first
    move_stage(stage, StageState.QUEUED)
    assert stage.queued_at is not None
    move_stage(stage, StageState.RUNNING)
    move_stage(stage, StageState.QUEUED)  # lease expired: back to the queue
    move_stage(stage, StageState.RUNNING)
    move_stage(stage, StageState.FAILED, error="boom")
    assert stage.error == "boom" and stage.finished_at is not None
    with pytest.raises(IllegalTransition):
        move_stage(stage, StageState.QUEUED)


def test_can_move_job_rejects_unknown_state():
    with pytest.raises(ValueError):
        can_move_job("queued", "exploded")


def test_claim_is_a_compare_and_set(embedded):
    from shared.db import session_scope

    with session_scope() as session:
        job = make_job()
        stage = make_stage(StageState.QUEUED)
        job.stages.append(stage)
        session.add(job)
    with session_scope() as session:
        assert claim_stage(session, stage.id, "worker-a") is True
    with session_scope() as session:
        assert claim_stage(session, stage.id, "worker-b") is False  # second delivery claims nothing
        claimed = session.get(Stage, stage.id)
        assert (claimed.state, claimed.worker_id, claimed.attempt) == ("running", "worker-a", 1)


def test_a_resumed_job_counts_running_time_only() -> None:
    from datetime import UTC, datetime, timedelta

    from shared.states import resume_job

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    job = make_job(JobState.FAILED)
    job.started_at, job.finished_at = t0, t0 + timedelta(seconds=10)
    stage = make_stage(StageState.FAILED)
    stage.index, stage.started_at, stage.finished_at, stage.attempt = 0, t0 + timedelta(seconds=1), t0 + timedelta(seconds=10), 1
    job.stages = [stage]
    resume_job(job, now=t0 + timedelta(seconds=1000))  # sat failed for 990 s
    assert job.started_at == t0 + timedelta(seconds=990)
    assert stage.started_at == t0 + timedelta(seconds=991) and stage.state == StageState.QUEUED.value


def test_a_resumed_stage_keeps_the_first_epoch_of_its_starvation_report() -> None:
    from types import SimpleNamespace

    from worker.ultralytics_ext.trainer import StagerunTrainer

    stored: dict = {"starvation": {"first_epoch": {"epoch": 1, "classes": {"bar": {"starved": 0.9}}}}}
    trainer = SimpleNamespace(
        reporter=SimpleNamespace(info=lambda: stored), record=lambda topic, value: stored.__setitem__(topic, value)
    )
    resumed = {"first_epoch": {"epoch": 4, "classes": {}}, "last_epoch": {"epoch": 6, "classes": {}}}
    StagerunTrainer.record_starvation(trainer, resumed)
    assert stored["starvation"]["first_epoch"]["epoch"] == 1 and stored["starvation"]["last_epoch"]["epoch"] == 6
