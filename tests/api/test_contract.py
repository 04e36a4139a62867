"""The API contract as a generated client sees it (issue 14): one error envelope, zoned timestamps, binary
downloads with a usable media type and HEAD, stage indices checked, the same code for the same condition."""

from __future__ import annotations

from shared.db import session_scope
from shared.models import Job


def test_an_unparseable_body_is_a_400_in_the_error_envelope(client) -> None:
    response = client.post("/v1/jobs", content=b'{"dataset": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_request" and error["field"] == "body" and "not valid JSON" in error["message"]


def test_timestamps_carry_their_zone_in_post_and_get(client, pipeline) -> None:
    posted = client.post("/v1/jobs", json=pipeline).json()
    fetched = client.get(f"/v1/jobs/{posted['id']}").json()
    listed = client.get("/v1/jobs").json()["items"][0]
    for moment in (posted["created_at"], fetched["created_at"], listed["created_at"], fetched["stages"][0]["queued_at"]):
        assert moment.endswith("Z") or moment.endswith("+00:00"), moment


def test_metrics_of_a_stage_the_job_does_not_have_is_a_404(client, pipeline) -> None:
    job = client.post("/v1/jobs", json=pipeline).json()
    assert client.get(f"/v1/jobs/{job['id']}/metrics", params={"stage": 1}).status_code == 200
    missing = client.get(f"/v1/jobs/{job['id']}/metrics", params={"stage": 9})
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "stage"


def test_cancel_of_a_finished_job_and_resume_of_a_queued_one_say_the_same_code(client, pipeline) -> None:
    job = client.post("/v1/jobs", json=pipeline).json()
    resumed = client.post(f"/v1/jobs/{job['id']}/resume")
    assert resumed.status_code == 409
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    again = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == resumed.json()["error"]["code"] == "illegal_transition"


def test_weights_and_artifacts_are_binary_downloads_with_head(client, pipeline, embedded) -> None:
    job = client.post("/v1/jobs", json=pipeline).json()
    folder = embedded.artifacts_root / "jobs" / job["id"] / "01-train" / "weights"
    folder.mkdir(parents=True)
    (folder / "best.pt").write_bytes(b"PK\x03\x04" + b"\0" * 60)
    (folder.parent / "results.csv").write_text("epoch,loss\n1,0.5\n")
    with session_scope() as session:
        session.get(Job, job["id"]).best_weights = f"jobs/{job['id']}/01-train/weights/best.pt"
        session.commit()
    for url in (f"/v1/jobs/{job['id']}/weights", f"/v1/jobs/{job['id']}/artifacts/01-train/weights/best.pt"):
        got, head = client.get(url), client.head(url)
        assert got.status_code == head.status_code == 200
        assert got.headers["content-type"] == head.headers["content-type"] == "application/octet-stream"
        assert head.headers["content-length"] == "64" and head.content == b""
    csv = client.get(f"/v1/jobs/{job['id']}/artifacts/01-train/results.csv")
    assert csv.headers["content-type"].startswith("text/csv")
    ranged = client.get(f"/v1/jobs/{job['id']}/weights", headers={"Range": "bytes=0-3"})
    assert ranged.status_code == 206 and ranged.content == b"PK\x03\x04"


def test_every_response_a_route_gives_is_declared(app) -> None:
    paths = app.openapi()["paths"]
    assert "409" in paths["/v1/jobs/{job_id}/stages/{index}/hard-examples"]["get"]["responses"]
    events = paths["/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]
    created = paths["/v1/jobs"]["post"]["responses"]["429"]
    assert "Retry-After" in created["headers"]
    assert "503" in paths["/readyz"]["get"]["responses"]
    for path in ("/v1/jobs/{job_id}/weights", "/v1/jobs/{job_id}/artifacts/{path}"):
        download = paths[path]["get"]["responses"]
        assert {"200", "206", "416"} <= set(download)
        assert download["200"]["content"]["application/octet-stream"]["schema"]["format"] == "binary"
        assert "head" in paths[path]
        assert any(p["name"] == "Range" and p["in"] == "header" for p in paths[path]["get"]["parameters"])
        assert "Content-Range" in download["206"]["headers"]
    ids = [op["operationId"] for item in paths.values() for op in item.values() if isinstance(op, dict)]
    assert len(ids) == len(set(ids))  # one operation id per method: generated clients keep them all


def test_416_and_415_use_the_error_envelope(client, pipeline, embedded) -> None:
    job = client.post("/v1/jobs", json=pipeline).json()
    folder = embedded.artifacts_root / "jobs" / job["id"] / "01-train"
    folder.mkdir(parents=True)
    (folder / "results.csv").write_text("epoch\n1\n")
    outside = client.get(f"/v1/jobs/{job['id']}/artifacts/01-train/results.csv", headers={"Range": "bytes=500-900"})
    assert outside.status_code == 416
    assert outside.json()["error"]["code"] == "range_not_satisfiable", outside.text
    unsupported = client.post("/v1/datasets", content=b"path=x", headers={"Content-Type": "text/plain"})
    assert unsupported.status_code == 415 and unsupported.json()["error"]["field"] == "Content-Type"
