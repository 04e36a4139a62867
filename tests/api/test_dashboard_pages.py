"""The dashboard's pages and its cookie session, over HTTP (the browser tests are tests/e2e/test_dashboard.py):
the token login and its cookie flags, CSRF on cookie-signed writes, scoping, redirects and bad input."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.api_clients import new_token


@pytest.fixture
def browser(app):
    """A client that sends no Authorization header: only what a browser would (cookies)."""
    with TestClient(app, follow_redirects=False) as client:
        yield client


def sign_in(browser: TestClient, token: str, next: str = "/"):
    return browser.post("/ui/login", data={"token": token, "next": next})


def page_csrf(html: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]*)"', html).group(1)


def test_a_page_without_a_session_goes_to_the_login_form(browser):
    response = browser.get("/ui/jobs/abc?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=/ui/jobs/abc?x=1"
    form = browser.get("/ui/login")
    assert form.status_code == 200 and 'name="token"' in form.text


def test_login_sets_a_strict_httponly_cookie_and_lands_on_next(browser):
    response = sign_in(browser, new_token("alice"), next="/ui/compare")
    assert response.status_code == 303 and response.headers["location"] == "/ui/compare"
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("stagerun_session="))
    csrf = next(c for c in cookies if c.startswith("stagerun_csrf="))
    for cookie in (session, csrf):
        flags = cookie.lower()
        assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
        assert "secure" not in flags  # plain http here; https sets it
    assert browser.get("/").status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", ""])
def test_login_never_redirects_off_site(browser, target):
    response = sign_in(browser, new_token("alice"), next=target)
    assert response.headers["location"] == "/"


@pytest.mark.parametrize(("token", "message"), [("", "Paste an API token."), ("sr_nope", "unknown or revoked")])
def test_a_bad_token_is_a_401_page_that_says_why(browser, token, message):
    response = sign_in(browser, token)
    assert response.status_code == 401 and message in response.text
    assert "stagerun_session" not in response.headers.get("set-cookie", "")


def test_the_cookie_signs_v1_reads_but_writes_need_the_csrf_value(browser, client_for, pipeline):
    alice = client_for("alice")
    job = alice.post("/v1/jobs", json=pipeline).json()
    sign_in(browser, new_token("alice"))
    assert browser.get(f"/v1/jobs/{job['id']}").json()["id"] == job["id"]

    refused = browser.post(f"/v1/jobs/{job['id']}/cancel")
    assert refused.status_code == 403
    assert refused.json()["error"]["field"] == "X-CSRF-Token"
    wrong = browser.post(f"/v1/jobs/{job['id']}/cancel", headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    assert alice.get(f"/v1/jobs/{job['id']}").json()["cancel_requested"] is False

    csrf = page_csrf(browser.get(f"/ui/jobs/{job['id']}").text)
    accepted = browser.post(f"/v1/jobs/{job['id']}/cancel", headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 202, accepted.text
    assert alice.get(f"/v1/jobs/{job['id']}").json()["state"] == "cancelled"


def test_a_revoked_token_ends_the_session(app, browser, client_for):
    from shared.auth import revoke_token
    from shared.db import session_scope

    token = new_token("carol", name="carol-web")
    sign_in(browser, token)
    assert browser.get("/v1/jobs").status_code == 200
    from api.deps import principal_cache

    with session_scope() as session:
        from shared.auth import find_token

        revoke_token(session, find_token(session, token).id)
    principal_cache.cache_clear()
    response = browser.get("/v1/jobs")
    assert response.status_code == 401 and response.json()["error"]["field"] == "Cookie"
    assert browser.get("/").status_code == 303


def test_pages_are_scoped_like_the_api(browser, client_for, pipeline):
    mine = client_for("alice").post("/v1/jobs", json={**pipeline, "name": "alice-job"}).json()
    theirs = client_for("bob").post("/v1/jobs", json={**pipeline, "name": "bob-job"}).json()
    sign_in(browser, new_token("alice"))
    listing = browser.get("/").text
    assert "alice-job" in listing and "bob-job" not in listing
    assert browser.get(f"/ui/jobs/{mine['id']}").status_code == 200
    hidden = browser.get(f"/ui/jobs/{theirs['id']}")
    assert hidden.status_code == 404 and f"job {theirs['id']} not found" in hidden.text


def test_the_jobs_list_filters_and_names_a_bad_state(browser, client_for, pipeline):
    alice = client_for("alice")
    alice.post("/v1/jobs", json={**pipeline, "name": "wanted", "tags": ["keep"]})
    alice.post("/v1/jobs", json={**pipeline, "name": "other", "tags": ["drop"]})
    sign_in(browser, new_token("alice"))
    tagged = browser.get("/", params={"tag": "keep"}).text
    assert "wanted" in tagged and ">other<" not in tagged
    named = browser.get("/", params={"name": "OTH"}).text
    assert ">other<" in named and "wanted" not in named
    bad = browser.get("/", params={"state": "sleeping"})
    assert bad.status_code == 422 and "unknown state &#39;sleeping&#39;" in bad.text


def test_job_page_shows_stages_and_embeds_metric_rows_safely(browser, client_for, pipeline):
    job = client_for("alice").post("/v1/jobs", json={**pipeline, "name": "<script>alert(1)</script>"}).json()
    sign_in(browser, new_token("alice"))
    html = browser.get(f"/ui/jobs/{job['id']}").text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'id="metrics-data">[]</script>' in html
    assert html.count('<tr data-stage="') == len(job["stages"])
    assert 'id="cancel"' in html and 'id="cancel" data-url' in html


def test_compare_page_names_the_side_at_fault(browser, client_for, pipeline):
    sign_in(browser, new_token("alice"))
    assert browser.get("/ui/compare").status_code == 200
    missing = browser.get("/ui/compare", params={"a": "0" * 32, "b": "1" * 32})
    assert missing.status_code == 404 and f"a: job {'0' * 32} not found" in missing.text
    malformed = browser.get("/ui/compare", params={"a": "not a job", "b": "1" * 32})
    assert malformed.status_code == 422 and "a: " in malformed.text


def test_sign_out_needs_the_csrf_value_and_clears_the_cookies(browser):
    sign_in(browser, new_token("alice"))
    assert browser.post("/ui/logout", data={"csrf": "guess"}).status_code == 403
    csrf = page_csrf(browser.get("/").text)
    response = browser.post("/ui/logout", data={"csrf": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    assert browser.get("/").status_code == 303


def test_static_assets_are_served_from_the_package(browser):
    for name in ("dashboard.css", "dashboard.js", "job.js"):
        response = browser.get(f"/ui/static/{name}")
        assert response.status_code == 200 and len(response.content) > 100
