"""Search and k-fold stages over HTTP: what a submit refuses (a 422 naming the field), the routes of a job that
has not started its search, and the child-job filters. The runs themselves: tests/worker/test_search_and_kfold.py."""

from __future__ import annotations

import pytest

TRAIN = {"epochs": 1, "imgsz": 64, "batch": 4}
SEARCH = {"type": "search", "trials": 3, "train": TRAIN, "space": {"box": {"low": 2.0, "high": 9.0}}}


def job_body(tiny_dataset: str, *stages: dict) -> dict:
    return {"dataset": tiny_dataset, "model": "yolov8n.yaml", "stages": list(stages)}


@pytest.mark.parametrize(
    ("stage", "field", "message"),
    [
        ({**SEARCH, "space": {}}, "stages.0.space", "at least 1"),
        ({**SEARCH, "space": {"lr0": {"low": 0.001, "high": 0.1}}}, "stages.0.space.lr0", "optimizer 'auto' ignores lr0"),
        ({**SEARCH, "space": {"epochs": {"low": 1, "high": 3, "int": True}}}, "stages.0.space.epochs", "not a searchable"),
        ({**SEARCH, "space": {"box": {"low": 3, "high": 1}}}, "stages.0.space.box", "must be below high"),
        ({**SEARCH, "space": {"focal.delta": {"low": 0.1, "high": 1}}}, "stages.0.space.focal.delta", "no field 'delta'"),
        ({**SEARCH, "train": {**TRAIN, "epochs": 0}}, "stages.0.train.epochs", "greater than or equal to 1"),
        ({**SEARCH, "train": {**TRAIN, "data": "from_stage"}}, "stages.0.train", "set it on the search stage"),
        ({**SEARCH, "class": "giraffe"}, "stages.0.class", "giraffe"),
        ({**SEARCH, "split": "test"}, "stages.0.split", "no 'test' split"),
        ({**SEARCH, "trials": 0}, "stages.0.trials", "greater than or equal to 1"),
        ({"type": "kfold", "folds": 9, "train": TRAIN}, "stages.0.folds", "too few for 9 folds"),
        ({"type": "kfold", "folds": 1, "train": TRAIN}, "stages.0.folds", "greater than or equal to 2"),
        ({"type": "kfold", "train": {**TRAIN, "type": "evaluate"}}, "stages.0.train", "set it on the kfold stage"),
    ],
)
def test_a_bad_fanout_stage_is_refused_naming_the_field(client, tiny_dataset, stage, field, message):
    response = client.post("/v1/jobs", json=job_body(tiny_dataset, stage))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field and message in error["message"], error


def test_routes_of_a_search_that_has_not_run(client, tiny_dataset):
    job = client.post("/v1/jobs", json=job_body(tiny_dataset, SEARCH, {"type": "evaluate", "imgsz": 64})).json()
    assert job["stages"][0]["spec"]["parallel"] == 2 and job["parent"] is None
    view = client.get(f"/v1/jobs/{job['id']}/search").json()
    assert view["state"] == "queued" and view["trials"] == [] and view["best"] is None
    assert view["trials_planned"] == 3 and view["objective"] == {"metric": "mAP50-95", "class": None,
                                                                 "split": "val", "direction": "maximize"}
    best = client.post(f"/v1/jobs/{job['id']}/search/best")
    assert best.status_code == 409 and "no completed trial" in best.json()["error"]["message"]
    wrong_kind = client.get(f"/v1/jobs/{job['id']}/search", params={"stage": 1})
    assert wrong_kind.status_code == 422
    assert "is an evaluate stage, not a search stage" in wrong_kind.json()["error"]["message"]
    assert client.get(f"/v1/jobs/{job['id']}/search", params={"stage": 5}).status_code == 404
    no_kfold = client.get(f"/v1/jobs/{job['id']}/kfold")
    assert no_kfold.status_code == 404 and "no kfold stage" in no_kfold.json()["error"]["message"]
    assert client.get("/v1/jobs", params={"parent": job["id"]}).json()["count"] == 0
    assert client.get("/v1/jobs", params={"top_level": "true"}).json()["count"] == 1


def test_parallel_is_capped_at_the_trials_and_another_owners_search_is_not_found(client, tiny_dataset, client_for):
    job = client.post("/v1/jobs", json=job_body(tiny_dataset, {**SEARCH, "trials": 2, "parallel": 8})).json()
    assert job["stages"][0]["spec"]["parallel"] == 2
    other = client_for("bob")
    assert other.get(f"/v1/jobs/{job['id']}/search").status_code == 404
    assert other.post(f"/v1/jobs/{job['id']}/search/best").status_code == 404
