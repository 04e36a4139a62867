"""Pipeline specs as a careless or hostile client sends them: every one a 4xx naming the field,
nothing stored, nothing queued."""

import pytest

ABSURD = [
    ({"stages": [{"type": "train", "epochs": 10**9}]}, "stages.0.epochs"),
    ({"stages": [{"type": "train", "epochs": 0}]}, "stages.0.epochs"),
    ({"stages": [{"type": "train", "imgsz": 100_000}]}, "stages.0.imgsz"),
    ({"stages": [{"type": "train", "imgsz": 33}]}, "stages.0.imgsz"),
    ({"stages": [{"type": "train", "batch": 5000}]}, "stages.0.batch"),
    ({"stages": [{"type": "train", "batch": -2}]}, "stages.0.batch"),
    ({"stages": [{"type": "train", "batch": True}]}, "stages.0.batch"),
    ({"stages": [{"type": "train", "optimizer": "SGD", "lr0": 50}]}, "stages.0.lr0"),
    ({"stages": [{"type": "train", "workers": -1}]}, "stages.0.workers"),
    ({"stages": [{"type": "train", "degrees": 1e308}]}, "stages.0.degrees"),
    ({"stages": [{"type": "train", "epochs": 5, "close_mosaic": 9}]}, "stages.0.close_mosaic"),
    ({"stages": [{"type": "deploy"}]}, "stages.0"),
    ({"stages": [{"type": "export"}]}, "stages.0.weights"),  # a yaml model and no train stage: nothing to export
    ({"stages": [{"type": None}]}, "stages.0"),
    ({"stages": [{"epochs": 3}]}, "stages.0"),
    ({"stages": [{"type": "train"}] * 33}, "stages"),
    ({"stages": "train"}, "stages"),
    ({"name": "x" * 201}, "name"),
    ({"tags": ["ok", "not ok"]}, "tags.1"),
    ({"dataset": ""}, "dataset"),
    ({"dataset": "/etc"}, "dataset"),
    ({"dataset": "%2e%2e/%2e%2e/etc"}, "dataset"),
    ({"dataset": "%252e%252e/etc"}, "dataset"),
    ({"dataset": "tiny/../../../etc"}, "dataset"),
    ({"dataset": "tiny\\..\\..\\etc"}, "dataset"),
    ({"dataset": "tiny/data.yaml\x00.png"}, "dataset"),
    ({"dataset": "dataset:" + "0" * 32}, "dataset"),
    ({"dataset": "dataset:../../etc"}, "dataset"),
    ({"dataset": "x" * 1000}, "dataset"),
    ({"model": "fake.pt"}, "model"),
    ({"model": "%2e%2e/%2e%2e/etc/passwd.pt"}, "model"),
    ({"model": "../weights/fake.pt"}, "model"),
    ({"model": "https://example.com/yolov8n.pt"}, "model"),
    ({"model": "job:../../etc"}, "model"),
    ({"model": "yolov99z.yaml"}, "model"),
    ({"model": "model.onnx"}, "model"),
    ({"owner": "someone-else"}, "owner"),
]


@pytest.mark.parametrize(("change", "field"), ABSURD)
def test_absurd_specs_are_refused_naming_the_field(client, pipeline, embedded, change, field):
    (embedded.weights_root / "fake.pt").write_text("not a checkpoint")
    response = client.post("/v1/jobs", json={**pipeline, **change})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["field"] == field, response.json()
    assert client.get("/v1/jobs").json()["count"] == 0


def test_non_object_bodies(client):
    for body in (b"[]", b"null", b"42", b'"x"'):
        response = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, body
    not_json = client.post("/v1/jobs", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "bad_request"
    assert client.get("/v1/jobs").json()["count"] == 0
