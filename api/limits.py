"""Request limits: body size (every route) and the rate of job creation (per token).

The job-creation buckets live in this API process (fine for the embedded default and for one API
replica; with N replicas behind a balancer a token may create up to N times the configured rate)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from functools import lru_cache

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import CurrentPrincipal
from shared.errors import RateLimited, error_body
from shared.rate import TokenBucket
from shared.settings import get_settings
from shared.urls import API_V1

DATASET_UPLOAD_PATH = f"{API_V1}/datasets"


def body_limit_for(scope: Scope) -> int:
    settings = get_settings()
    if scope.get("method") == "POST" and scope.get("path", "").rstrip("/") == DATASET_UPLOAD_PATH:
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
        if content_type.lower().startswith(b"multipart/form-data"):
            return settings.dataset_upload_max_bytes
    return settings.api_max_body_bytes


async def _send_error(send: Send, status: int, code: str, message: str, field: str | None) -> None:
    body = json.dumps(error_body(code, message, field)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """413 for a body over the route's limit: at once from Content-Length, else while it streams in
    (the route's body reader then raises, and the error handler answers 413 with the error shape)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit_for(scope)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await _send_error(send, 400, "bad_request", "invalid Content-Length", "Content-Length")
            return
        if declared is not None and int(declared) > limit:
            await _send_error(send, 413, "too_large", f"request body larger than {limit} bytes", None)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body larger than {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


class JobCreationLimiter:
    def __init__(self, per_minute: float, burst: int):
        self.rate_per_s = per_minute / 60.0
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket.full(self.burst, self.rate_per_s, now)
        wait_s = bucket.take(now)
        if wait_s > 0:
            raise RateLimited(f"too many jobs created with this token; retry in {wait_s:.1f} s", retry_after_s=wait_s)

    def give_back(self, key: str) -> None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.give_back()


@lru_cache
def job_creation_limiter() -> JobCreationLimiter:
    settings = get_settings()
    return JobCreationLimiter(settings.job_create_per_minute, settings.job_create_burst)


async def job_creation_limit(principal: CurrentPrincipal) -> AsyncIterator[None]:
    """One token per job created: a submission refused (invalid body, bad reference, conflict) gives its
    token back, so mistakes never lock a client out of submitting a valid job."""
    key = f"token:{principal.token_id}" if principal.token_id is not None else f"owner:{principal.owner}"
    limiter = job_creation_limiter()
    limiter.check(key)
    try:
        yield
    except Exception:
        limiter.give_back(key)
        raise
