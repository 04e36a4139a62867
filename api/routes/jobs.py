from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from api.deps import CurrentPrincipal, SessionDep, SettingsDep, current_principal, database_limiter, job_cache
from api.limits import job_creation_limit
from api.responses import CONFLICT, EVENT_STREAM, RATE_LIMITED, V1_ERRORS
from shared import jobs
from shared.auth import Principal
from shared.errors import NotFound
from shared.queue import enqueue_stage
from shared.schemas import JobCreate, JobPublic, JobsPublic, MetricsPublic, RerunRequest
from shared.states import JobState, StageState
from shared.urls import job_url

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(current_principal)], responses=V1_ERRORS)
log = logging.getLogger(__name__)

JobId = Annotated[str, Path(description="Job id (32 hex digits).", max_length=64)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200, description="Retry-safe key: same key, same job."),
]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    dependencies=[Depends(job_creation_limit)],
    responses=CONFLICT | RATE_LIMITED,
)
def submit_job(
    spec: JobCreate,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobPublic:
    """Validate a pipeline and queue it. Every stage argument is checked before anything is queued."""
    job, created = jobs.create_job(session, settings, spec, principal, idempotency_key)
    if created:
        first = next(s for s in job.stages if s.state == StageState.QUEUED.value)
        try:
            enqueue_stage(first.id)
        except Exception:  # the job is stored as queued; the worker's sweep sends it when the broker is back
            log.exception("could not send stage %s of job %s to the broker", first.id, job.id)
    else:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = job_url(job.id)
    return jobs.job_public(job)


@router.get("", response_model=JobsPublic)
def list_jobs(
    session: SessionDep,
    principal: CurrentPrincipal,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> JobsPublic:
    items, count = jobs.list_jobs(session, principal, state.value if state else None, limit, offset)
    return JobsPublic(items=[jobs.job_public(j) for j in items], count=count, limit=limit, offset=offset)


def _job_json(job_id: str, principal: Principal) -> bytes:
    return jobs.job_public(jobs.read_job(job_id, principal)).model_dump_json().encode()


@router.get("/{job_id}", response_model=JobPublic)
async def get_job(job_id: JobId, principal: CurrentPrincipal) -> Response:
    """A job and its stages: state, epoch k of n, latest metrics, timings, ETA, error text.

    The most polled route: served from a short-lived cache (api/job_cache.py), else one worker-thread
    hop for the database read; the document is serialised once (no second validation)."""

    async def load() -> bytes:
        return await anyio.to_thread.run_sync(_job_json, job_id, principal, limiter=database_limiter())

    body = await job_cache().get(job_id, principal.cache_scope, load)
    return Response(body, media_type="application/json")


@router.get("/{job_id}/metrics", response_model=MetricsPublic)
def get_metrics(
    job_id: JobId,
    session: SessionDep,
    principal: CurrentPrincipal,
    stage: Annotated[int | None, Query(ge=0, le=1000)] = None,
) -> MetricsPublic:
    """One row per epoch per stage: the columns of Ultralytics' results.csv, stored as each epoch ends."""
    job = jobs.get_job(session, job_id, principal)
    if stage is not None and stage >= len(job.stages):
        raise NotFound(f"job {job.id} has no stage {stage} (it has stages 0..{len(job.stages) - 1})", field="stage")
    rows = jobs.metric_rows(session, job)
    if stage is not None:
        rows = [r for r in rows if r.stage_index == stage]
    return MetricsPublic(job_id=job_id, rows=rows)


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobPublic, responses=CONFLICT)
def cancel_job(job_id: JobId, session: SessionDep, principal: CurrentPrincipal) -> JobPublic:
    """Stop a job: a running stage stops at its next batch boundary (within one epoch), keeping its artifacts."""
    job = jobs.request_cancel(session, jobs.get_job(session, job_id, principal))
    job_cache().drop(job_id)
    return jobs.job_public(job)


@router.post("/{job_id}/resume", status_code=status.HTTP_202_ACCEPTED, response_model=JobPublic, responses=CONFLICT)
def resume_job(job_id: JobId, session: SessionDep, principal: CurrentPrincipal) -> JobPublic:
    """Run a failed or cancelled job again from its first unfinished stage; a train stage continues from
    its own last.pt, losing at most the epoch that was in progress. 409 for a job in any other state."""
    job = jobs.get_job(session, job_id, principal)
    stage = jobs.resume(session, job)
    job_cache().drop(job_id)
    try:
        enqueue_stage(stage.id)
    except Exception:  # stored as queued; the workers' reaper sends it when the broker is back
        log.exception("could not send stage %s of job %s to the broker", stage.id, job_id)
    return jobs.job_public(job)


@router.post(
    "/{job_id}/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    dependencies=[Depends(job_creation_limit)],
    responses=CONFLICT | RATE_LIMITED,
)
def rerun_job(
    job_id: JobId,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    response: Response,
    from_stage: Annotated[int, Query(ge=0, le=1000, description="First stage to run again (from 0).")],
    body: RerunRequest | None = None,
) -> JobPublic:
    """A new job with this job's pipeline: the stages before ``from_stage`` reuse this job's outputs (their
    results and files, nothing copied), the rest run again, with ``overrides`` applied to them. 409 when a
    stage before ``from_stage`` did not succeed."""
    source = jobs.get_job(session, job_id, principal)
    overrides = None if body is None or body.overrides is None else body.overrides.model_dump(exclude_none=True)
    job = jobs.rerun_job(session, settings, source, from_stage, principal, overrides, None if body is None else body.name)
    first = next(s for s in job.stages if s.state == StageState.QUEUED.value)
    try:
        enqueue_stage(first.id)
    except Exception:  # stored as queued; the workers' reaper sends it when the broker is back
        log.exception("could not send stage %s of job %s to the broker", first.id, job.id)
    response.headers["Location"] = job_url(job.id)
    return jobs.job_public(job)


def _snapshot(job_id: str, principal: Principal) -> dict:
    return json.loads(_job_json(job_id, principal))  # a stream wants its own fresh reads


@router.get("/{job_id}/events", response_class=StreamingResponse, responses=EVENT_STREAM)
async def job_events(
    job_id: JobId,
    principal: CurrentPrincipal,
    interval: Annotated[float, Query(ge=0.2, le=30.0, description="Seconds between checks.")] = 1.0,
) -> StreamingResponse:
    """Server-sent events: a ``job`` event whenever the job changes, until it reaches a terminal state."""
    first = await run_in_threadpool(_snapshot, job_id, principal)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        snapshot, previous = first, None
        while True:
            fingerprint = json.dumps(
                [snapshot["state"], snapshot["progress"], [(s["state"], s["epoch"]) for s in snapshot["stages"]]]
            )
            if fingerprint != previous:
                previous = fingerprint
                yield f"event: job\ndata: {json.dumps(snapshot)}\n\n"
            if JobState(snapshot["state"]).is_terminal():
                yield "event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(interval)
            snapshot = await run_in_threadpool(_snapshot, job_id, principal)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
