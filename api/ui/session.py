"""The dashboard's login: the same bearer token, pasted once and kept in a cookie the page's scripts cannot read.

- ``stagerun_session`` holds the token: HttpOnly, SameSite=Strict, Path=/, Secure when the page came over https.
- ``stagerun_csrf`` holds a random value the server also writes into each page (``<meta name="csrf-token">``).
  A request authenticated by the cookie that changes something (not GET/HEAD/OPTIONS) must send that value in
  ``X-CSRF-Token``: another site can make the browser send the cookie, never read the page to learn the value
  (double-submit; SameSite=Strict already keeps the cookie off cross-site requests)."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request, Response

from shared.errors import Forbidden

SESSION_COOKIE = "stagerun_session"
CSRF_COOKIE = "stagerun_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_AGE_S = 7 * 24 * 3600


def session_token(request: Request) -> str | None:
    token = request.cookies.get(SESSION_COOKIE)
    return token.strip() if token and token.strip() else None


def check_csrf(request: Request) -> None:
    """Refuse a state-changing request that the cookie authenticated unless it carries the page's CSRF value."""
    if request.method in SAFE_METHODS:
        return
    expected = request.cookies.get(CSRF_COOKIE) or ""
    sent = request.headers.get(CSRF_HEADER) or ""
    if not expected or not hmac.compare_digest(expected, sent):
        raise Forbidden(
            f"a request signed in by the dashboard cookie must send the page's CSRF value in {CSRF_HEADER}",
            field=CSRF_HEADER,
        )


def start_session(request: Request, response: Response, token: str) -> None:
    secure = request.url.scheme == "https"
    options = {"httponly": True, "samesite": "strict", "secure": secure, "path": "/", "max_age": MAX_AGE_S}
    response.set_cookie(SESSION_COOKIE, token, **options)
    response.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(32), **options)


def end_session(response: Response) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", httponly=True, samesite="strict")
