"""Prometheus metrics: ``GET /metrics``, outside ``/v1`` like the health checks."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import choose_encoder

from api.deps import database_limiter

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format (OpenMetrics when the Accept header asks for it).",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/openmetrics-text": {"schema": {"type": "string"}},
            },
        }
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this API process and of the database: jobs and stages by state, queue depth,
    stage durations, epochs per minute, request latency by route template.

    Deliberately unauthenticated, as Prometheus endpoints conventionally are (like ``/healthz``): it shows
    counts and timings only, never a job, an owner, a token or a path. Where that is too much, keep
    ``/metrics`` off the public listener (reverse proxy rule or network policy) rather than give the
    scraper a token."""
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    registry = request.app.state.prometheus_registry
    body = await anyio.to_thread.run_sync(encoder, registry, limiter=database_limiter())
    return Response(content=body, media_type=content_type)
