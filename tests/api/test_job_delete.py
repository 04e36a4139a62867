"""DELETE /v1/jobs/{id}: finished jobs only; the job, its stages, its metric rows and its folder go (the folder stays
with keep_artifacts); refused while a re-run job reuses its outputs, or while an unfinished job starts from it."""

from __future__ import annotations

import zipfile

from sqlalchemy import func, select

from shared.auth import Principal
from shared.db import session_scope
from shared.jobs import rerun_job
from shared.models import Job, MetricRow, Stage
from shared.settings import get_settings
from shared.states import JobState, StageState, move_job, move_stage, stage_succeeded


def finish_first_stage(job_id: str, embedded) -> str:
    """Stage 0 (train) of the job succeeds, as a worker leaves it: weights, a log, two epochs of metrics; stage 1
    is queued. Returns the weights' path (relative to the artifacts root)."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        train = job.stages[0]
        move_job(job, JobState.RUNNING)
        move_stage(train, StageState.RUNNING)
        weights = f"{train.dir}/weights/best.pt"
        (embedded.artifacts_root / weights).parent.mkdir(parents=True)
        with zipfile.ZipFile(embedded.artifacts_root / weights, "w") as archive:
            archive.writestr("archive/data.pkl", b"weights")
        (embedded.artifacts_root / train.dir / "stage.log").write_text("trained\n")
        train.results = {"weights": weights, "metrics": {"overall": {"mAP50": 0.5}}}
        train.epoch = 2
        job.best_weights = weights
        for epoch in (1, 2):
            session.add(MetricRow(stage_id=train.id, epoch=epoch, values={"metrics/mAP50(B)": 0.1 * epoch}))
        stage_succeeded(job, train)
        return weights


def rows_of(job_id: str) -> tuple[int, int, int]:
    with session_scope() as session:
        stage_ids = select(Stage.id).where(Stage.job_id == job_id)
        return (
            session.scalar(select(func.count()).select_from(Job).where(Job.id == job_id)),
            session.scalar(select(func.count()).select_from(Stage).where(Stage.job_id == job_id)),
            session.scalar(select(func.count()).select_from(MetricRow).where(MetricRow.stage_id.in_(stage_ids))),
        )


def test_a_queued_or_running_job_is_not_deleted(client, pipeline, embedded) -> None:
    job = client.post("/v1/jobs", json=pipeline).json()
    queued = client.delete(f"/v1/jobs/{job['id']}")
    assert queued.status_code == 409
    assert queued.json()["error"] == {
        "code": "illegal_transition",
        "message": f"job {job['id']} is queued: only a finished job (succeeded, failed, cancelled or gated) can be "
        "deleted; cancel it first",
        "field": "job_id",
    }
    finish_first_stage(job["id"], embedded)
    with session_scope() as session:
        move_stage(session.get(Job, job["id"]).stages[1], StageState.RUNNING)
    running = client.delete(f"/v1/jobs/{job['id']}", params={"keep_artifacts": "true"})
    assert running.status_code == 409 and running.json()["error"]["code"] == "illegal_transition"
    assert f"job {job['id']} is running" in running.json()["error"]["message"]
    assert rows_of(job["id"]) == (1, 2, 2) and (embedded.artifacts_root / "jobs" / job["id"]).is_dir()


def test_delete_removes_the_rows_and_the_folder(client, pipeline, embedded) -> None:
    job, other = (client.post("/v1/jobs", json=pipeline).json() for _ in range(2))
    for each in (job, other):
        finish_first_stage(each["id"], embedded)
        assert client.post(f"/v1/jobs/{each['id']}/cancel").json()["state"] == "cancelled"
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 200  # now in the API's job cache
    assert rows_of(job["id"]) == (1, 2, 2)
    deleted = client.delete(f"/v1/jobs/{job['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert rows_of(job["id"]) == (0, 0, 0)
    assert not (embedded.artifacts_root / "jobs" / job["id"]).exists()
    gone = client.get(f"/v1/jobs/{job['id']}")  # not served from the cache
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert client.get(f"/v1/jobs/{job['id']}/metrics").status_code == 404
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 404
    assert rows_of(other["id"]) == (1, 2, 2) and (embedded.artifacts_root / "jobs" / other["id"]).is_dir()
    listed = client.get("/v1/jobs").json()
    assert listed["count"] == 1 and listed["items"][0]["id"] == other["id"]


def test_keep_artifacts_forgets_the_job_and_leaves_its_folder(client, pipeline, embedded) -> None:
    job = client.post("/v1/jobs", json=pipeline).json()
    weights = finish_first_stage(job["id"], embedded)
    client.post(f"/v1/jobs/{job['id']}/cancel")
    assert client.delete(f"/v1/jobs/{job['id']}", params={"keep_artifacts": "true"}).status_code == 204
    assert rows_of(job["id"]) == (0, 0, 0)
    assert (embedded.artifacts_root / weights).is_file()
    assert (embedded.artifacts_root / job["stages"][0]["dir"] / "stage.log").read_text() == "trained\n"


def test_delete_is_refused_while_a_rerun_reuses_the_outputs(client, pipeline, embedded) -> None:
    source = client.post("/v1/jobs", json=pipeline).json()
    weights = finish_first_stage(source["id"], embedded)
    with session_scope() as session:
        stored = session.get(Job, source["id"])
        rerun = rerun_job(session, get_settings(), stored, 1, Principal(owner="tester", is_admin=True))
        rerun_id = rerun.id
        assert rerun.stages[0].info["reused_from"] == {"job": source["id"], "stage": 0}
    client.post(f"/v1/jobs/{source['id']}/cancel")
    refused = client.delete(f"/v1/jobs/{source['id']}")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "conflict" and error["field"] == "job_id"
    assert error["message"] == (
        f"job {source['id']} cannot be deleted with its artifacts: stage 0 of job {rerun_id} reuses its outputs "
        f"({source['stages'][0]['dir']}); delete job {rerun_id} first, or pass keep_artifacts=true to forget this "
        "job and leave its folder"
    )
    assert rows_of(source["id"]) == (1, 2, 2) and (embedded.artifacts_root / weights).is_file()

    assert client.post(f"/v1/jobs/{rerun_id}/cancel").status_code == 202
    assert client.delete(f"/v1/jobs/{rerun_id}").status_code == 204  # the re-run's own folder only
    assert (embedded.artifacts_root / weights).is_file()
    assert client.delete(f"/v1/jobs/{source['id']}").status_code == 204  # nothing reuses it any more
    assert not (embedded.artifacts_root / "jobs" / source["id"]).exists()


def test_keep_artifacts_deletes_a_reused_job_and_the_rerun_keeps_its_files(client, pipeline, embedded) -> None:
    source = client.post("/v1/jobs", json=pipeline).json()
    weights = finish_first_stage(source["id"], embedded)
    with session_scope() as session:
        rerun = rerun_job(session, get_settings(), session.get(Job, source["id"]), 1, Principal("tester", True))
        rerun_id = rerun.id
    client.post(f"/v1/jobs/{source['id']}/cancel")
    assert client.delete(f"/v1/jobs/{source['id']}", params={"keep_artifacts": True}).status_code == 204
    kept = client.get(f"/v1/jobs/{rerun_id}").json()
    assert kept["stages"][0]["dir"] == source["stages"][0]["dir"] and kept["best_weights"] == weights
    assert (embedded.artifacts_root / weights).is_file()


def test_delete_is_refused_while_an_unfinished_job_starts_from_its_weights(client, pipeline, embedded) -> None:
    source = client.post("/v1/jobs", json=pipeline).json()
    finish_first_stage(source["id"], embedded)
    client.post(f"/v1/jobs/{source['id']}/cancel")
    child = client.post("/v1/jobs", json={**pipeline, "model": f"job:{source['id']}"})
    assert child.status_code == 202, child.text
    for params in ({}, {"keep_artifacts": "true"}):
        refused = client.delete(f"/v1/jobs/{source['id']}", params=params)
        assert refused.status_code == 409
        assert refused.json()["error"]["message"] == (
            f"job {source['id']} cannot be deleted: unfinished job {child.json()['id']} starts from its weights"
        )
    client.post(f"/v1/jobs/{child.json()['id']}/cancel")
    assert client.delete(f"/v1/jobs/{source['id']}").status_code == 204


def test_another_owners_job_is_404_and_stays(client_for, pipeline, embedded) -> None:
    owner, stranger = client_for("team-a"), client_for("team-b")
    job = owner.post("/v1/jobs", json=pipeline).json()
    owner.post(f"/v1/jobs/{job['id']}/cancel")
    hidden = stranger.delete(f"/v1/jobs/{job['id']}")
    assert hidden.status_code == 404 and hidden.json()["error"]["message"] == f"job {job['id']} not found"
    assert rows_of(job["id"]) == (1, 2, 0)
    assert owner.delete(f"/v1/jobs/{job['id']}").status_code == 204


def test_the_route_declares_204_and_409(app) -> None:
    operation = app.openapi()["paths"]["/v1/jobs/{job_id}"]["delete"]
    assert {"204", "401", "404", "409"} <= set(operation["responses"])
    assert "content" not in operation["responses"]["204"]
    assert [p["name"] for p in operation["parameters"]] == ["job_id", "keep_artifacts"]


def test_cli_cancel_and_delete(client, pipeline, embedded, app, monkeypatch, capsys) -> None:
    from fastapi.testclient import TestClient

    from client import api_client
    from client.cli import main
    from tests.api_clients import new_token

    headers = {"Authorization": f"Bearer {new_token('tester', admin=True, name='cli')}"}
    monkeypatch.setattr(api_client, "_client", lambda: TestClient(app, headers=headers))
    kept, gone = (client.post("/v1/jobs", json=pipeline).json()["id"] for _ in range(2))
    assert main(["delete", kept]) == 1
    assert capsys.readouterr().err.startswith(f"error: HTTP 409: job {kept} is queued: only a finished job")
    assert main(["cancel", kept]) == 0 and main(["cancel", gone]) == 0
    assert capsys.readouterr().out == f"job {kept} cancelled\njob {gone} cancelled\n"
    assert main(["cancel", kept]) == 1
    assert "already cancelled" in capsys.readouterr().err
    (embedded.artifacts_root / "jobs" / kept).mkdir(parents=True)
    assert main(["delete", kept, "--keep-artifacts"]) == 0 and main(["delete", gone]) == 0
    assert capsys.readouterr().out == f"job {kept} deleted (its artifacts are kept)\njob {gone} deleted\n"
    assert (embedded.artifacts_root / "jobs" / kept).is_dir()
    assert client.get("/v1/jobs").json()["count"] == 0
