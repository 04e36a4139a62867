"""Request limits: body size (413 with the error shape) and the job-creation rate per token (429)."""

import pytest

from shared.rate import TokenBucket


def test_token_bucket_by_hand():
    bucket = TokenBucket.full(capacity=2, rate_per_s=0.5, now=100.0)
    assert bucket.take(100.0) == 0.0 and bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == pytest.approx(2.0)  # one token takes 1 / 0.5 s
    assert bucket.take(101.0) == pytest.approx(1.0)  # half a token refilled
    assert bucket.take(102.0) == 0.0
    assert bucket.take(1000.0) == 0.0 and bucket.tokens == pytest.approx(1.0)  # capped at capacity


def test_oversized_body_is_413_from_content_length(client, embedded):
    body = b'{"dataset": "' + b"x" * (embedded.api_max_body_bytes + 10) + b'"}'
    response = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert (
        response.json()["error"]["code"] == "too_large"
        and "larger than 1048576 bytes" in (response.json()["error"]["message"])
    )
    assert client.get("/v1/jobs").json()["count"] == 0


def test_oversized_streamed_body_is_413(client, embedded):
    def chunks():
        for _ in range(40):
            yield b" " * 32_768

    response = client.post("/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    folder = client.post("/v1/datasets", content=chunks(), headers={"Content-Type": "application/json"})
    assert folder.status_code == 413  # the larger limit is for zip uploads only


def test_bad_content_length_is_400(client):
    response = client.post(
        "/v1/jobs", content=b"{}", headers={"Content-Type": "application/json", "Content-Length": "x"}
    )
    assert response.status_code == 400 and response.json()["error"]["field"] == "Content-Length"


def test_job_creation_rate_per_token(client_for, pipeline, embedded, monkeypatch):
    from api.limits import job_creation_limiter

    monkeypatch.setattr(embedded, "job_create_burst", 2)
    monkeypatch.setattr(embedded, "job_create_per_minute", 1.0)
    job_creation_limiter.cache_clear()
    alice, bob = client_for("alice"), client_for("alice")  # same owner, two tokens: a bucket each
    assert [alice.post("/v1/jobs", json=pipeline).status_code for _ in range(2)] == [202, 202]
    refused = alice.post("/v1/jobs", json=pipeline)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert 55 <= int(refused.headers["Retry-After"]) <= 60
    assert alice.get("/v1/jobs").json()["count"] == 2  # nothing stored for the refused request
    assert bob.post("/v1/jobs", json=pipeline).status_code == 202
    job_creation_limiter.cache_clear()


def test_refused_submissions_do_not_use_up_the_job_creation_rate(client_for, pipeline, embedded, monkeypatch):
    from api.limits import job_creation_limiter

    monkeypatch.setattr(embedded, "job_create_burst", 2)
    monkeypatch.setattr(embedded, "job_create_per_minute", 1.0)
    job_creation_limiter.cache_clear()
    alice = client_for("alice")
    bad_body = {**pipeline, "stages": [{"type": "train", "epochs": -1}]}
    bad_reference = {**pipeline, "dataset": "no-such-dataset"}
    for _ in range(15):
        assert alice.post("/v1/jobs", json=bad_body).status_code == 422
        assert alice.post("/v1/jobs", json=bad_reference).status_code == 422
    assert [alice.post("/v1/jobs", json=pipeline).status_code for _ in range(3)] == [202, 202, 429]
    job_creation_limiter.cache_clear()
