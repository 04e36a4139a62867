"""POST /v1/jobs/{id}/resume on the embedded stack (SQLite database and broker, no worker)."""

from sqlalchemy import select

from shared.db import session_scope
from shared.models import Job, Stage
from shared.states import JobState, StageState, move_job, move_stage
from tests.api.test_jobs import broker_messages


def fail_first_stage(job_id: str) -> None:
    """What a worker leaves after stage 1 failed: job failed, stage 1 failed with its attempt, stage 2 skipped."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        first, second = job.stages
        move_job(job, JobState.RUNNING)
        move_stage(first, StageState.RUNNING)
        first.attempt, first.worker_id, first.info = 2, "host:1", {"oom_recovery": [{"epoch": 2}]}
        move_stage(first, StageState.FAILED, error="boom")
        move_stage(second, StageState.SKIPPED)
        move_job(job, JobState.FAILED, error="stage 1 (train) failed: boom")


def test_resume_failed_job_queues_its_first_unfinished_stage(client, pipeline, embedded):
    job = client.post("/v1/jobs", json=pipeline).json()
    fail_first_stage(job["id"])
    response = client.post(f"/v1/jobs/{job['id']}/resume")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["state"] == "queued" and body["error"] is None and body["finished_at"] is None
    assert [(s["state"], s["attempt"], s["error"]) for s in body["stages"]] == [
        ("queued", 0, None),
        ("pending", 0, None),
    ]
    assert body["stages"][0]["info"] == {"oom_recovery": [{"epoch": 2}]}  # what earlier attempts recorded stays
    assert body["links"]["resume"] == f"/v1/jobs/{job['id']}/resume"
    assert broker_messages(embedded) == 2  # submit, then resume
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "queued"  # no stale cached document


def test_resume_cancelled_job_keeps_succeeded_stages(client, pipeline):
    job = client.post("/v1/jobs", json=pipeline).json()
    with session_scope() as session:
        db_job = session.get(Job, job["id"])
        first, second = db_job.stages
        move_job(db_job, JobState.RUNNING)
        move_stage(first, StageState.RUNNING)
        move_stage(first, StageState.SUCCEEDED)
        move_stage(second, StageState.QUEUED)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    body = client.post(f"/v1/jobs/{job['id']}/resume").json()
    assert body["state"] == "queued" and body["cancel_requested"] is False
    assert [s["state"] for s in body["stages"]] == ["succeeded", "queued"]


def test_resume_refuses_jobs_that_are_not_failed_or_cancelled(client, pipeline):
    job = client.post("/v1/jobs", json=pipeline).json()
    queued = client.post(f"/v1/jobs/{job['id']}/resume")
    assert queued.status_code == 409 and queued.json()["error"]["code"] == "illegal_transition"
    assert "only a failed or cancelled job" in queued.json()["error"]["message"]
    with session_scope() as session:
        db_job = session.get(Job, job["id"])
        for stage in db_job.stages:
            if stage.state == StageState.PENDING.value:
                move_stage(stage, StageState.QUEUED)
            move_stage(stage, StageState.RUNNING)
            move_stage(stage, StageState.SUCCEEDED)
        move_job(db_job, JobState.RUNNING)
        move_job(db_job, JobState.SUCCEEDED)
    succeeded = client.post(f"/v1/jobs/{job['id']}/resume")
    assert succeeded.status_code == 409
    with session_scope() as session:
        states = session.scalars(select(Stage.state).where(Stage.job_id == job["id"])).all()
    assert states == ["succeeded", "succeeded"]  # nothing changed
    assert client.post(f"/v1/jobs/{'f' * 32}/resume").status_code == 404
