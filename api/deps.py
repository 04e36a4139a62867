"""Request dependencies as small aliases, so route signatures read like prose.

Who a request acts as: the bearer token, checked against the database and remembered briefly.
Every ``/v1`` router depends on ``current_principal``; the token check costs a database read only
once per token per ``auth_cache_ttl_s`` (the most polled route stays one read per poll). A token
revoked from another process stops working within that TTL; a revoked or unknown token is never
remembered as valid. ``last_used_at`` is written at most once per TTL per token and process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.job_cache import JobDocumentCache
from api.ui.session import check_csrf, session_token
from shared.auth import Principal, find_token, principal_of
from shared.db import new_session
from shared.errors import Unauthorized
from shared.models import utcnow
from shared.settings import Settings, get_settings


@lru_cache
def database_limiter() -> anyio.CapacityLimiter:
    """Caps the threads that read the database at once. SQLite reads are CPU work under the GIL, so
    more than two threads only contend (measured: 0.53 ms a read alone, 1.2 ms with ten threads);
    a networked database waits on I/O, so it gets as many as the connection pool holds."""
    settings = get_settings()
    return anyio.CapacityLimiter(1 if settings.is_embedded else settings.db_pool_size)


@lru_cache
def job_cache() -> JobDocumentCache:
    return JobDocumentCache(get_settings().api_job_cache_ttl_s)


def get_session() -> Iterator[Session]:
    session = new_session()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API token (`stagerun token create --name NAME`); the embedded default writes one to "
    "<home>/api-token on first start.",
)


class PrincipalCache:
    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token: str, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[token] = (time.monotonic() + self.ttl_s, principal)


@lru_cache
def principal_cache() -> PrincipalCache:
    return PrincipalCache(get_settings().auth_cache_ttl_s)


def _look_up(token: str) -> Principal | None:
    with new_session() as session:
        found = find_token(session, token)
        if found is None:
            return None
        found.last_used_at = utcnow()
        session.commit()
        return principal_of(found)


async def principal_of_token(token: str) -> Principal | None:
    """The principal of a token (cached), or None for an unknown or revoked one."""
    principal = principal_cache().get(token)
    if principal is None:
        principal = await anyio.to_thread.run_sync(_look_up, token, limiter=database_limiter())
        if principal is not None:
            principal_cache().put(token, principal)
    return principal


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The bearer token's principal; without one, the dashboard's session cookie (api/ui/session.py), whose
    state-changing requests must also carry the page's CSRF value."""
    if credentials is not None:
        principal = await principal_of_token(credentials.credentials.strip())
        if principal is None:
            raise Unauthorized("invalid or revoked token", field="Authorization")
        return principal
    token = session_token(request)
    if token is None:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'", field="Authorization")
    principal = await principal_of_token(token)
    if principal is None:
        raise Unauthorized("the dashboard session's token is invalid or revoked: sign in again", field="Cookie")
    check_csrf(request)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
