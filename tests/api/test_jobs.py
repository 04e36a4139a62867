import sqlite3

import pytest


def broker_messages(settings) -> int:
    with sqlite3.connect(settings.home / "broker.db") as connection:
        return connection.execute("SELECT COUNT(*) FROM kombu_message").fetchone()[0]


def test_submit_queues_first_stage(client, pipeline, embedded):
    response = client.post("/v1/jobs", json=pipeline)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] == "queued" and job["links"]["weights"] == f"/v1/jobs/{job['id']}/weights"
    assert [(s["type"], s["state"], s["dir"]) for s in job["stages"]] == [
        ("train", "queued", f"jobs/{job['id']}/01-train"),
        ("evaluate", "pending", f"jobs/{job['id']}/02-evaluate"),
    ]
    assert job["stages"][0]["epochs"] == 1
    assert broker_messages(embedded) == 1
    assert client.get(job["links"]["self"]).json()["id"] == job["id"]


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"stages": [{"type": "train", "epochs": -3}]}, 422, "stages.0.epochs"),
        ({"stages": [{"type": "train", "imgsz": "big"}]}, 422, "stages.0.imgsz"),
        ({"stages": [{"type": "train", "learning_rate": 0.1}]}, 422, "stages.0.learning_rate"),
        ({"stages": [{"type": "distill"}]}, 422, "stages.0"),
        ({"stages": []}, 422, "stages"),
        ({"stages": [{"type": "train", "class_weights": {"cat": 2}}]}, 422, "stages.0.class_weights.cat"),
        ({"stages": [{"type": "train", "sampling": {"weights": {"9": 2}}}]}, 422, "stages.0.sampling.weights.9"),
        ({"stages": [{"type": "train", "copy_paste_rare": {"classes": ["bar", "dog"]}}]}, 422,
         "stages.0.copy_paste_rare.classes.1"),
        ({"stages": [{"type": "train", "focal": {"gamma": 99}}]}, 422, "stages.0.focal.gamma"),
        ({"dataset": "../../etc"}, 422, "dataset"),
        ({"dataset": "missing"}, 422, "dataset"),
        ({"model": "yolov8n.pt"}, 422, "model"),
        ({"model": "/etc/passwd.pt"}, 422, "model"),
        ({"model": "job:" + "f" * 32}, 422, "model"),
        ({"stages": [{"type": "evaluate"}]}, 422, "stages.0.weights"),
        ({"stages": [{"type": "train"}, {"type": "evaluate", "split": "test"}]}, 422, "stages.1.split"),
    ],
)
def test_bad_specs_are_422_naming_the_field(client, pipeline, embedded, change, status, field):
    response = client.post("/v1/jobs", json={**pipeline, **change})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field and error["message"]
    assert client.get("/v1/jobs").json()["count"] == 0  # nothing stored
    assert not (embedded.home / "broker.db").exists() or broker_messages(embedded) == 0


def test_malformed_json_is_400(client):
    response = client.post("/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"


def test_idempotency_key(client, pipeline, embedded):
    first = client.post("/v1/jobs", json=pipeline, headers={"Idempotency-Key": "k-1"})
    again = client.post("/v1/jobs", json=pipeline, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert client.get("/v1/jobs").json()["count"] == 1 and broker_messages(embedded) == 1
    other = client.post("/v1/jobs", json={**pipeline, "name": "other"}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 409 and other.json()["error"]["field"] == "Idempotency-Key"


def test_list_filter_and_pagination(client, pipeline):
    ids = [client.post("/v1/jobs", json={**pipeline, "name": f"j{i}"}).json()["id"] for i in range(3)]
    client.post(f"/v1/jobs/{ids[0]}/cancel")
    page = client.get("/v1/jobs", params={"limit": 2}).json()
    assert page["count"] == 3 and len(page["items"]) == 2 and page["limit"] == 2
    rest = client.get("/v1/jobs", params={"limit": 2, "offset": 2}).json()
    assert len(rest["items"]) == 1
    listed = {j["id"] for j in page["items"] + rest["items"]}
    assert listed == set(ids)
    queued = client.get("/v1/jobs", params={"state": "queued"}).json()
    assert queued["count"] == 2 and ids[0] not in {j["id"] for j in queued["items"]}
    assert client.get("/v1/jobs", params={"state": "cancelled"}).json()["items"][0]["id"] == ids[0]
    assert client.get("/v1/jobs", params={"state": "exploded"}).status_code == 422
    assert client.get("/v1/jobs", params={"limit": 0}).status_code == 422


def test_unknown_job_is_404_with_error_shape(client):
    for url in ("/v1/jobs/nope", "/v1/jobs/" + "a" * 32 + "/metrics", "/v1/jobs/" + "a" * 32 + "/weights"):
        response = client.get(url)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_cancel_queued_job(client, pipeline):
    job = client.post("/v1/jobs", json=pipeline).json()
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 202
    body = cancelled.json()
    assert body["state"] == "cancelled" and body["cancel_requested"] is True and body["finished_at"]
    assert [s["state"] for s in body["stages"]] == ["cancelled", "cancelled"]
    again = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


def test_metrics_empty_before_training(client, pipeline):
    job = client.post("/v1/jobs", json=pipeline).json()
    assert client.get(f"/v1/jobs/{job['id']}/metrics").json() == {"job_id": job["id"], "rows": []}


def test_events_stream_ends_on_terminal_job(client, pipeline):
    job = client.post("/v1/jobs", json=pipeline).json()
    client.post(f"/v1/jobs/{job['id']}/cancel")
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    assert text.startswith("retry: 2000\n\nid: ") and "\nevent: job\ndata: {" in text
    assert '"state": "cancelled"' in text
    assert text.rstrip().endswith("event: end\ndata: {}")


def test_health_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "database": True, "broker": True}
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/metrics",
        "/v1/jobs/{job_id}/cancel",
        "/v1/jobs/{job_id}/artifacts",
        "/v1/jobs/{job_id}/artifacts/{path}",
        "/v1/jobs/{job_id}/weights",
        "/v1/datasets",
        "/v1/datasets/{dataset_id}",
    ):
        assert path in paths


def test_readyz_reports_an_unreachable_broker(client, monkeypatch):
    from shared import queue

    monkeypatch.setattr(queue.get_settings(), "broker_url", "redis://127.0.0.1:1/0")
    queue.get_celery.cache_clear()
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["broker"] is False
    queue.get_celery.cache_clear()
