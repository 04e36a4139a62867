"""Search and k-fold stages end to end on CPU: trials and folds are child jobs fanned out by the local runner,
the study lives in the database, and the results name the best trial, every trial and each class's spread."""

from __future__ import annotations

import pytest

from shared import jobs
from shared.auth import LOCAL_ADMIN
from shared.db import session_scope
from shared.models import Job
from shared.schemas import JobCreate
from worker.pipeline import run_job_locally

pytestmark = pytest.mark.slow
TRAIN = {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "seed": 0}
SEARCH = {
    "type": "search",
    "trials": 3,
    "parallel": 2,
    "seed": 0,
    "train": TRAIN,
    "space": {"lr0": {"low": 0.001, "high": 0.02, "log": True}, "box": {"low": 2.0, "high": 9.0},
              "optimizer": {"choices": ["SGD", "AdamW"]}},
    "metric": "mAP50",
    "imgsz": 64,
}


def submit(settings, dataset: str, stages: list[dict]) -> str:
    spec = JobCreate.model_validate({"dataset": dataset, "model": "yolov8n.yaml", "stages": stages, "name": "fan"})
    with session_scope() as session:
        job, _ = jobs.create_job(session, settings, spec, LOCAL_ADMIN)
    return job.id


def _page(app, path: str) -> str:
    """A dashboard page as a signed-in browser gets it."""
    from fastapi.testclient import TestClient

    from tests.api_clients import new_token

    with TestClient(app, follow_redirects=False) as browser:
        browser.post("/ui/login", data={"token": new_token("tester", admin=True), "next": "/"})
        response = browser.get(path)
        assert response.status_code == 200, response.text
        return response.text


def test_a_search_runs_its_trials_as_child_jobs_and_hands_on_the_best(app, client, embedded, tiny_dataset):
    job_id = submit(embedded, tiny_dataset, [SEARCH, {"type": "evaluate", "imgsz": 64, "batch": 4}])
    assert run_job_locally(job_id) == "succeeded"
    job = client.get(f"/v1/jobs/{job_id}").json()
    search = job["stages"][0]
    results = search["results"]
    assert len(results["trials"]) == 3
    asked = {tuple(sorted(row["params"].items())) for row in results["trials"]}
    assert len(asked) == 3  # each step's seeded sampler starts a sequence of its own: no trial is asked twice
    assert {row["state"] for row in results["trials"]} <= {"COMPLETE", "PRUNED", "FAIL"}
    complete = [row for row in results["trials"] if row["state"] == "COMPLETE"]
    assert complete and results["best"]["value"] == max(row["value"] for row in complete)
    best_job = client.get(f"/v1/jobs/{results['best']['job_id']}").json()
    assert best_job["state"] == "succeeded" and best_job["parent"]["job_id"] == job_id
    assert results["weights"] == best_job["stages"][0]["results"]["weights"] == job["best_weights"]
    assert set(results["best"]["params"]) == {"lr0", "box", "optimizer"}
    assert 0.001 <= results["best"]["params"]["lr0"] <= 0.02
    trial_train = best_job["stages"][0]["spec"]
    assert trial_train["lr0"] == results["best"]["params"]["lr0"] and trial_train["epochs"] == 1
    # the evaluate stage after the search evaluates the best trial's weights
    assert job["stages"][1]["results"]["evaluated_weights"] == results["weights"]
    children = client.get("/v1/jobs", params={"parent": job_id}).json()
    assert children["count"] == 3 and all(c["parent"]["stage_index"] == 0 for c in children["items"])
    page = _page(app, f"/ui/jobs/{job_id}")
    assert 'class="trials"' in page and f'href="/ui/jobs/{results["best"]["job_id"]}"' in page
    assert page.count('<tr data-trial="') == 3 and 'class="best"' in page
    assert _page(app, "/").count("<tr data-job-id=") == 1  # the trials only under their tag
    assert _page(app, f"/?tag=search:{job_id}").count("<tr data-job-id=") == 3
    table = client.get(f"/v1/jobs/{job_id}/search").json()
    assert table["best"]["number"] == results["best"]["number"] and len(table["trials"]) == 3
    assert table["state"] == "succeeded" and table["objective"]["metric"] == "mAP50"

    best = client.post(f"/v1/jobs/{job_id}/search/best")
    assert best.status_code == 201, best.text
    submitted = best.json()
    assert submitted["parent"] is None and submitted["state"] == "queued"
    assert submitted["stages"][0]["spec"]["lr0"] == results["best"]["params"]["lr0"]
    assert [s["type"] for s in submitted["stages"]] == ["train", "evaluate"]

    # extended: a search continued from this one learns from its trials and runs one more
    refused = client.post("/v1/jobs", json={"dataset": tiny_dataset, "stages": [
        {**SEARCH, "continue_from": job_id, "space": {"dfl": {"low": 1.0, "high": 2.0}}}]})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "stages.0.continue_from"
    assert "keeps the parameters" in refused.json()["error"]["message"]
    second_id = submit(embedded, tiny_dataset, [{**SEARCH, "trials": 1, "continue_from": job_id}])
    assert run_job_locally(second_id) == "succeeded"
    view = client.get(f"/v1/jobs/{second_id}/search").json()
    assert len(view["trials"]) == 4 and [t["from_job"] for t in view["trials"]] == [job_id] * 3 + [None]
    assert [t["value"] for t in view["trials"][:3]] == [t["value"] for t in table["trials"]]
    assert view["trials"][0]["job_id"] == table["trials"][0]["job_id"]
    assert client.get("/v1/jobs", params={"parent": second_id}).json()["count"] == 1  # one new trial ran
    extended = client.get(f"/v1/jobs/{second_id}").json()["stages"][0]["results"]
    assert extended["best"]["value"] == max(t["value"] for t in view["trials"] if t["value"] is not None)


def test_a_kfold_stage_trains_each_fold_and_reports_mean_and_spread_per_class(app, client, embedded, tiny_dataset):
    job_id = submit(embedded, tiny_dataset, [{"type": "kfold", "folds": 2, "train": TRAIN, "imgsz": 64}])
    assert run_job_locally(job_id) == "succeeded"
    job = client.get(f"/v1/jobs/{job_id}").json()
    results = job["stages"][0]["results"]
    assert results["k"] == 2 and [f["fold"] for f in results["folds"]] == [0, 1]
    assert sum(f["val_images"] for f in results["folds"]) == 8  # the 8 training images, each held out once
    assert all(f["train_images"] == 4 for f in results["folds"])
    overall = results["summary"]["overall"]["mAP50"]
    values = [f["overall"]["mAP50"] for f in results["folds"]]
    assert overall["mean"] == pytest.approx(sum(values) / 2, abs=1e-6) and overall["folds"] == 2
    names = [row["name"] for row in results["summary"]["per_class"]]
    assert names == [row["name"] for row in results["metrics"]["per_class"]] and len(names) == 3
    with session_scope() as session:
        kids = session.query(Job).filter_by(parent_job_id=job_id).order_by(Job.child_index).all()
        assert [k.dataset for k in kids] == [f"fold:{job_id}/0/0", f"fold:{job_id}/0/1"]
    page = _page(app, f"/ui/jobs/{job_id}")
    assert 'class="folds"' in page and 'class="kfold-summary"' in page
    assert f"{overall['mean']:.3f} ± {overall['std']:.3f}" in page
    report = client.get(f"/v1/jobs/{job_id}/kfold").json()
    assert report["summary"]["overall"]["mAP50"]["mean"] == overall["mean"]


def test_cancel_stops_the_trials_resume_continues_them_and_delete_takes_them_along(client, embedded, tiny_dataset):
    from shared.fanout import CANCELLED_WITH_PARENT
    from worker.pipeline import execute_stage

    search = {**SEARCH, "trials": 2, "parallel": 1, "space": {"box": {"low": 2.0, "high": 9.0}}}
    job_id = submit(embedded, tiny_dataset, [search])
    with session_scope() as session:
        driver = session.get(Job, job_id).stages[0].id
    sent: list[int] = []
    assert execute_stage(driver, enqueue=sent.append) == "waiting for its child jobs"
    assert client.get(f"/v1/jobs/{job_id}").json()["stages"][0]["state"] == "waiting"
    [trial] = client.get("/v1/jobs", params={"parent": job_id}).json()["items"]
    assert sent == [_stage_id(trial["id"])]  # the worker sends the trial's first stage to the broker

    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
    stopped = client.get(f"/v1/jobs/{trial['id']}").json()
    assert stopped["state"] == "cancelled" and stopped["error"] == CANCELLED_WITH_PARENT

    assert client.post(f"/v1/jobs/{job_id}/resume").status_code == 202
    assert run_job_locally(job_id) == "succeeded"
    view = client.get(f"/v1/jobs/{job_id}/search").json()
    assert [t["state"] for t in view["trials"]] == ["COMPLETE", "COMPLETE"]
    assert view["trials"][0]["job_id"] == trial["id"]  # the stopped trial was resumed, not replaced
    assert client.get(f"/v1/jobs/{trial['id']}").json()["state"] == "succeeded"

    refused = client.delete(f"/v1/jobs/{trial['id']}")
    assert refused.status_code == 409 and "delete that job" in refused.json()["error"]["message"]
    trial_dir = embedded.artifacts_root / "jobs" / trial["id"]
    assert trial_dir.is_dir()
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert client.get(f"/v1/jobs/{trial['id']}").status_code == 404 and not trial_dir.exists()


def _stage_id(job_id: str) -> int:
    with session_scope() as session:
        return session.get(Job, job_id).stages[0].id
