"""Bearer tokens: every /v1 route needs one; a token sees only its owner's jobs (404 for others')."""

import os
import stat

import pytest
from sqlalchemy import select

from tests.api_clients import new_token


def v1_requests(app) -> list[tuple[str, str]]:
    """One concrete request per /v1 operation in the OpenAPI schema, with made-up ids."""
    requests = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/v1"):
            concrete = path.replace("{path}", "a.txt").replace("{job_id}", "0" * 32).replace("{dataset_id}", "0" * 32)
            requests.extend((method.upper(), concrete) for method in operations)
    return requests


def test_every_v1_route_requires_a_token(app, anonymous):
    requests = v1_requests(app)
    assert len(requests) >= 8
    for method, path in requests:
        for headers in ({}, {"Authorization": "Bearer sr_not-a-token"}, {"Authorization": "Basic dTpw"}):
            response = anonymous.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert method == "HEAD" or response.json()["error"]["code"] == "unauthorized"
            assert response.headers["WWW-Authenticate"] == "Bearer"


def test_health_needs_no_token(anonymous):
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/readyz").status_code == 200
    assert anonymous.get("/openapi.json").status_code == 200


def test_revoked_token_is_refused(app, embedded, monkeypatch):
    from fastapi.testclient import TestClient

    from api.deps import principal_cache
    from shared.auth import revoke_token
    from shared.db import session_scope
    from shared.models import ApiToken

    monkeypatch.setattr(principal_cache(), "ttl_s", 0)
    token = new_token("carol")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as carol:
        assert carol.get("/v1/jobs").status_code == 200
        with session_scope() as session:
            stored = session.scalar(select(ApiToken).where(ApiToken.owner == "carol"))
            assert stored.last_used_at is not None
            revoke_token(session, stored.id)
        response = carol.get("/v1/jobs")
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]


def test_tokens_are_stored_only_as_hashes(embedded):
    from shared.auth import hash_token
    from shared.db import session_scope
    from shared.models import ApiToken

    token = new_token("dave")
    with session_scope() as session:
        stored = session.scalar(select(ApiToken).where(ApiToken.owner == "dave"))
        assert stored.token_hash == hash_token(token) and token not in repr(stored.__dict__)
    files = sorted(embedded.home.glob("stagerun.db*"))  # the database and its write-ahead log, where new rows are
    assert embedded.home / "stagerun.db" in files
    assert stored.token_hash.encode() in b"".join(f.read_bytes() for f in files)  # the read can find a row
    assert token.encode() not in b"".join(f.read_bytes() for f in files)


@pytest.fixture
def alice_job(client_for, pipeline):
    alice = client_for("alice")
    job = alice.post("/v1/jobs", json=pipeline).json()
    return alice, job


def test_other_owners_jobs_are_not_found(client_for, alice_job, embedded):
    alice, job = alice_job
    assert job["owner"] == "alice"
    stage_dir = embedded.artifacts_root / job["stages"][0]["dir"]
    stage_dir.mkdir(parents=True)
    (stage_dir / "results.csv").write_text("epoch\n1\n")
    bob = client_for("bob")
    base = f"/v1/jobs/{job['id']}"
    for _ in range(2):  # the second GET would come from the job cache if it leaked
        assert alice.get(base).status_code == 200
        assert bob.get(base).status_code == 404
    for url in (f"{base}/metrics", f"{base}/events", f"{base}/artifacts", f"{base}/artifacts/01-train/results.csv"):
        if not url.endswith("/events"):  # the owner's stream would follow the queued job
            assert alice.get(url).status_code == 200, url
        response = bob.get(url)
        assert response.status_code == 404 and response.json()["error"]["message"] == f"job {job['id']} not found"
    assert bob.get(f"{base}/weights").status_code == 404
    assert bob.post(f"{base}/cancel").status_code == 404
    assert alice.get(base).json()["state"] == "queued"  # bob's cancel changed nothing
    assert bob.get("/v1/jobs").json() == {"items": [], "count": 0, "limit": 50, "offset": 0}
    assert [j["id"] for j in alice.get("/v1/jobs").json()["items"]] == [job["id"]]


def test_same_owner_tokens_share_and_admin_sees_all(client_for, alice_job):
    _alice, job = alice_job
    alice_laptop = client_for("alice")
    assert alice_laptop.get(f"/v1/jobs/{job['id']}").status_code == 200
    admin = client_for("root", admin=True)
    assert admin.get(f"/v1/jobs/{job['id']}").json()["owner"] == "alice"
    assert admin.get("/v1/jobs").json()["count"] == 1
    assert admin.post(f"/v1/jobs/{job['id']}/cancel").json()["state"] == "cancelled"


def test_idempotency_keys_are_per_owner(client_for, pipeline):
    alice, bob = client_for("alice"), client_for("bob")
    first = alice.post("/v1/jobs", json=pipeline, headers={"Idempotency-Key": "same"})
    other = bob.post("/v1/jobs", json={**pipeline, "name": "bob's"}, headers={"Idempotency-Key": "same"})
    assert first.status_code == other.status_code == 202 and first.json()["id"] != other.json()["id"]
    assert "Idempotent-Replayed" not in other.headers


def test_weights_of_another_owners_job_cannot_be_named(client_for, alice_job, pipeline):
    _alice, job = alice_job
    response = client_for("bob").post("/v1/jobs", json={**pipeline, "model": f"job:{job['id']}"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "model"
    assert "no job" in response.json()["error"]["message"]


def test_local_token_file_is_private_and_reused(embedded):
    from shared.auth import ensure_local_token, find_token
    from shared.db import session_scope

    with session_scope() as session:
        token, created = ensure_local_token(session, embedded.token_file)
        again, created_again = ensure_local_token(session, embedded.token_file)
        assert created and not created_again and token == again
        assert find_token(session, token).is_admin
    assert stat.S_IMODE(os.stat(embedded.token_file).st_mode) == 0o600
    assert embedded.token_file.read_text().strip() == token


def test_cli_token_commands(embedded, capsys):
    from client.cli import main

    assert main(["token", "create", "--name", "ci", "--owner", "team-a"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("sr_")
    assert main(["token", "list"]) == 0
    listing = capsys.readouterr().out
    assert "team-a" in listing and token not in listing
    assert main(["token", "revoke", "1"]) == 0
    assert main(["token", "revoke", "99"]) == 1
    assert main(["token", "create", "--name", " "]) == 2


def test_cli_client_sends_env_token_else_the_local_file(embedded, monkeypatch):
    from client.api_client import auth_headers
    from shared.settings import get_settings

    assert auth_headers() == {}
    embedded.token_file.write_text("sr_from-file\n")
    assert auth_headers() == {"Authorization": "Bearer sr_from-file"}
    monkeypatch.setenv("STAGERUN_TOKEN", "sr_from-env")
    get_settings.cache_clear()
    assert auth_headers() == {"Authorization": "Bearer sr_from-env"}
