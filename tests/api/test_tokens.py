"""Tokens over the API (/v1/tokens): admins create, list and revoke them; anyone else gets 403."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

TOKEN_FIELDS = {"id", "name", "owner", "admin", "created_at", "last_used_at", "revoked_at"}


@pytest.fixture
def admin(client_for):
    return client_for("root", admin=True)


def bearer(app, token: str) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def test_admin_creates_a_token_that_sees_only_its_owners_jobs(app, admin, client_for, pipeline):
    alice_job = client_for("alice").post("/v1/jobs", json=pipeline).json()
    client_for("bob").post("/v1/jobs", json={**pipeline, "name": "bob's"})

    created = admin.post("/v1/tokens", json={"name": "alice-ci", "owner": "alice"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "name", "owner", "admin", "created_at", "token"}
    assert body["name"] == "alice-ci" and body["owner"] == "alice" and body["admin"] is False
    assert body["token"].startswith("sr_") and body["created_at"].endswith("Z")

    with bearer(app, body["token"]) as alice_ci:
        listed = alice_ci.get("/v1/jobs")
    assert listed.status_code == 200
    assert [job["id"] for job in listed.json()["items"]] == [alice_job["id"]]


def test_an_admin_token_made_over_the_api_sees_every_owner(app, admin, client_for, pipeline):
    client_for("alice").post("/v1/jobs", json=pipeline)
    client_for("bob").post("/v1/jobs", json=pipeline)
    created = admin.post("/v1/tokens", json={"name": "ops", "owner": "ops", "admin": True}).json()
    assert created["admin"] is True
    with bearer(app, created["token"]) as ops:
        assert ops.get("/v1/jobs").json()["count"] == 2
        assert ops.get("/v1/tokens").status_code == 200


def test_list_shows_no_secret(app, admin, embedded):
    from shared.db import session_scope
    from shared.models import ApiToken

    text = admin.post("/v1/tokens", json={"name": "ci", "owner": "team-a"}).json()["token"]
    with bearer(app, text) as ci:
        ci.get("/v1/jobs")
    listed = admin.get("/v1/tokens")
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert all(set(item) == TOKEN_FIELDS for item in items)
    assert [(i["name"], i["owner"], i["admin"]) for i in items] == [("root", "root", True), ("ci", "team-a", False)]
    assert items[1]["last_used_at"] is not None and items[1]["revoked_at"] is None
    with session_scope() as session:
        hashes = list(session.scalars(select(ApiToken.token_hash)))
    assert text not in listed.text and not any(h in listed.text for h in hashes)


def test_revoke_makes_the_token_401_and_a_second_revoke_409(app, admin):
    created = admin.post("/v1/tokens", json={"name": "ci", "owner": "alice"}).json()
    with bearer(app, created["token"]) as ci:
        assert ci.get("/v1/jobs").status_code == 200  # now remembered by the principal cache
        revoked = admin.delete(f"/v1/tokens/{created['id']}")
        assert revoked.status_code == 204 and revoked.content == b""
        refused = ci.get("/v1/jobs")  # at once in this process, despite the cache
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"

    listed = {t["id"]: t for t in admin.get("/v1/tokens").json()["items"]}
    revoked_at = listed[created["id"]]["revoked_at"]
    assert revoked_at is not None

    again = admin.delete(f"/v1/tokens/{created['id']}")
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "conflict" and error["field"] == "token_id"
    assert "already revoked at" in error["message"] and revoked_at[:19] in error["message"]


def test_revoke_of_an_unknown_token_is_404(admin):
    response = admin.delete("/v1/tokens/9999")
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "not_found", "message": "no token with id 9999", "field": "token_id"}
    assert admin.delete("/v1/tokens/abc").status_code == 422
    assert admin.delete("/v1/tokens/0").status_code == 422


def test_an_admin_may_revoke_the_token_it_uses(app, embedded):
    from tests.api_clients import new_token

    text = new_token("root", admin=True)
    with bearer(app, text) as root:
        own_id = next(t["id"] for t in root.get("/v1/tokens").json()["items"] if t["owner"] == "root")
        assert root.delete(f"/v1/tokens/{own_id}").status_code == 204
        assert root.get("/v1/tokens").status_code == 401


def test_a_non_admin_token_gets_403(client_for, admin):
    target = admin.post("/v1/tokens", json={"name": "x", "owner": "x"}).json()
    alice = client_for("alice")
    for method, url, body in (
        ("POST", "/v1/tokens", {"name": "mine", "owner": "alice", "admin": True}),
        ("GET", "/v1/tokens", None),
        ("DELETE", f"/v1/tokens/{target['id']}", None),
    ):
        response = alice.request(method, url, json=body)
        assert response.status_code == 403, (method, url, response.text)
        assert response.json() == {
            "error": {"code": "forbidden", "message": "managing tokens needs an admin token", "field": "Authorization"}
        }
    assert {t["revoked_at"] for t in admin.get("/v1/tokens").json()["items"]} == {None}  # nothing was revoked
    assert len(admin.get("/v1/tokens").json()["items"]) == 3  # root, x, alice: alice made none


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "owner": "alice"}, "name"),
        ({"name": "   ", "owner": "alice"}, "name"),
        ({"name": "ci", "owner": ""}, "owner"),
        ({"name": "ci"}, "owner"),
        ({"name": "x" * 101, "owner": "alice"}, "name"),
        ({"name": "ci", "owner": "alice", "token_hash": "0" * 64}, "token_hash"),
        ({"name": "ci", "owner": "alice", "admin": "maybe"}, "admin"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(admin, body, field):
    response = admin.post("/v1/tokens", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request" and response.json()["error"]["field"] == field
    assert len(admin.get("/v1/tokens").json()["items"]) == 1  # only root's


def test_names_are_stripped(admin):
    body = admin.post("/v1/tokens", json={"name": "  ci  ", "owner": " team-a "}).json()
    assert (body["name"], body["owner"]) == ("ci", "team-a")


def test_token_routes_need_a_token_and_are_documented(anonymous, app):
    for method, url in (("POST", "/v1/tokens"), ("GET", "/v1/tokens"), ("DELETE", "/v1/tokens/1")):
        response = anonymous.request(method, url, json={"name": "a", "owner": "b"} if method == "POST" else None)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    paths = app.openapi()["paths"]
    assert {"post", "get"} <= set(paths["/v1/tokens"]) and "delete" in paths["/v1/tokens/{token_id}"]
    assert {"401", "403", "422"} <= set(paths["/v1/tokens"]["post"]["responses"])
    assert {"204", "403", "404", "409"} <= set(paths["/v1/tokens/{token_id}"]["delete"]["responses"])
    listed = paths["/v1/tokens"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = app.openapi()["components"]["schemas"][listed.rsplit("/", 1)[-1]]
    item = app.openapi()["components"]["schemas"]["TokenPublic"]
    assert "items" in schema["properties"] and "token" not in item["properties"]
    assert "token_hash" not in item["properties"]


def test_revoke_live_token_is_a_compare_and_set(embedded):
    from shared.auth import create_token, revoke_live_token
    from shared.db import session_scope
    from shared.errors import Conflict, NotFound

    with session_scope() as session:
        token, _text = create_token(session, "ci", "alice")
        assert revoke_live_token(session, token.id).revoked_at is not None
        with pytest.raises(Conflict, match="already revoked at"):
            revoke_live_token(session, token.id)
        with pytest.raises(NotFound):
            revoke_live_token(session, token.id + 100)
