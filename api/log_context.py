"""Binds the job a request is about (``/v1/jobs/{id}...``) to its log lines (shared/log_format.py)."""

from __future__ import annotations

import re

from shared import log_format
from shared.urls import API_V1

_JOB_PATH = re.compile(rf"^{re.escape(API_V1)}/jobs/([0-9a-f]{{32}})(?:/|$)")


class JobLogContext:
    """A pure ASGI middleware (no extra task, so event streams pass through untouched)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        match = _JOB_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        with log_format.bound(job_id=match.group(1)):
            await self.app(scope, receive, send)
