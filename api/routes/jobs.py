from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, StreamingResponse
from sqlalchemy import select

from api.deps import CurrentPrincipal, SessionDep, SettingsDep, current_principal, database_limiter, job_cache
from api.limits import job_creation_limit
from api.responses import CONFLICT, EVENT_STREAM, RATE_LIMITED, V1_ERRORS
from shared import events, jobs, stage_logs
from shared.auth import Principal
from shared.db import new_session
from shared.errors import InvalidSpec, NotFound
from shared.models import Job
from shared.queue import enqueue_stage
from shared.schemas import JobCreate, JobPublic, JobsPublic, MetricsPublic, RerunRequest
from shared.schemas.jobs import Tag
from shared.states import JobState, StageState
from shared.urls import job_url

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(current_principal)], responses=V1_ERRORS)
log = logging.getLogger(__name__)

JobId = Annotated[str, Path(description="Job id (32 hex digits).", max_length=64)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200, description="Retry-safe key: same key, same job."),
]


def _send(stage) -> None:
    """Send a queued stage to the broker. It is stored as queued either way: when the broker is away, the
    workers' reaper sends it once it is back."""
    try:
        enqueue_stage(stage.id)
    except Exception:
        log.exception("could not send stage %s of job %s to the broker", stage.id, stage.job_id)


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
        _send(next(s for s in job.stages if s.state == StageState.QUEUED.value))
    else:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = job_url(job.id)
    return jobs.job_public(job)


@router.get("", response_model=JobsPublic)
def list_jobs(
    session: SessionDep,
    principal: CurrentPrincipal,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    tag: Annotated[
        list[Tag] | None,
        Query(max_length=32, description="Only jobs with this tag; repeated, only jobs with all of them."),
    ] = None,
    name: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Only jobs whose name holds this (any case).")
    ] = None,
    owner: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            description="Only this owner's jobs. Only an admin token sees other owners' jobs: for another token, "
            "another owner's list is empty.",
        ),
    ] = None,
    parent: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="Only the child jobs (search trials, k-fold folds) of this job."),
    ] = None,
    top_level: Annotated[bool, Query(description="Only jobs that are no other job's child.")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> JobsPublic:
    """Jobs newest first, filtered; ``count`` is how many match in all, whatever the page."""
    items, count = jobs.list_jobs(
        session, principal, state.value if state else None, limit, offset, tags=tag or (), name=name, owner=owner,
        parent=parent, top_level=top_level,
    )
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


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=CONFLICT)
def delete_job(
    job_id: JobId,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    keep_artifacts: Annotated[
        bool, Query(description="Forget the job but leave its folder jobs/<id>/ on the artifacts volume.")
    ] = False,
) -> Response:
    """Forget a finished job: its stages and metrics, and its artifact folder unless ``keep_artifacts``. 409 for a
    queued or running job (cancel it first), for a job whose outputs a re-run job reuses (that job is named:
    delete it first, or keep the artifacts), for a job an unfinished job starts from (``job:<id>``), and for a
    search trial or k-fold fold (delete its parent: a job takes its child jobs along)."""
    deleted = jobs.delete_job(
        session, settings, jobs.get_job(session, job_id, principal), keep_artifacts=keep_artifacts
    )
    for gone in deleted:
        job_cache().drop(gone)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


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
    _send(stage)
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
    _send(next(s for s in job.stages if s.state == StageState.QUEUED.value))
    response.headers["Location"] = job_url(job.id)
    return jobs.job_public(job)


def _snapshot(job_id: str, principal: Principal) -> tuple[int, dict]:
    """The job's newest settled event id, then its document (read after, so it reflects at least that event)."""
    with new_session() as session:
        cursor = events.last_id(session, job_id)
    return cursor, json.loads(_job_json(job_id, principal))  # a stream wants its own fresh reads


def _events_after(job_id: str, after: int) -> tuple[list[tuple[int, str, dict]], str | None]:
    """The job's events after ``after`` and its state now (None when it was deleted meanwhile)."""
    with new_session() as session:
        batch = [(e.id, e.kind, e.data) for e in events.read_after(session, job_id, after, EVENT_BATCH)]
        return batch, session.scalar(select(Job.state).where(Job.id == job_id))


def _sse(kind: str, event_id: int, data: dict) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"


EVENT_BATCH = 500
RETRY_MS = 2000
LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID", max_length=20, description="Resume after this event (sent by browsers on reconnect)."),
]


@router.get("/{job_id}/events", response_class=StreamingResponse, responses=EVENT_STREAM)
async def job_events(
    job_id: JobId,
    principal: CurrentPrincipal,
    interval: Annotated[float, Query(ge=0.2, le=30.0, description="Seconds between checks.")] = 1.0,
    last_event_id: LastEventId = None,
    after: Annotated[
        int | None, Query(ge=0, description="Resume after this event id, for clients that cannot send Last-Event-ID.")
    ] = None,
) -> StreamingResponse:
    """Server-sent events of a job, from its event log (shared/events.py), until it ends."""
    if last_event_id is not None and not last_event_id.strip().isdigit():
        raise InvalidSpec(f"Last-Event-ID must be an event id (a whole number), got {last_event_id!r}", field="Last-Event-ID")
    resume_after = int(last_event_id) if last_event_id is not None else after
    cursor, snapshot = await run_in_threadpool(_snapshot, job_id, principal)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        position = cursor if resume_after is None else resume_after
        yield f"retry: {RETRY_MS}\n\n"
        if resume_after is None:
            yield _sse("job", position, snapshot)
        ended_at = None
        while True:
            batch, state = await run_in_threadpool(_events_after, job_id, position)
            for event_id, kind, data in batch:
                yield _sse(kind, event_id, data)
                position = event_id
            if len(batch) == EVENT_BATCH:
                continue
            if state is None or JobState(state).is_terminal():
                ended_at = ended_at or time.monotonic()
                if not batch and (events.settles_at_once() or time.monotonic() - ended_at > events.SETTLE_S):
                    yield _sse("end", position, {})
                    return
            await asyncio.sleep(interval)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


FOLLOW_POLL_S = 0.5
LOG_TEXT = {
    200: {
        "description": "The log as plain text: no ANSI codes, a progress bar redrawn with carriage returns only "
        "in its last state. Without ``stage``, every stage's log under a line ``==> stage N (type) <==``. "
        "With ``follow=true``, streamed as lines are written, until the job ends.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


def _check_stage(job, stage: int | None) -> None:
    if stage is not None and stage >= len(job.stages):
        raise NotFound(f"job {job.id} has no stage {stage} (it has stages 0..{len(job.stages) - 1})", field="stage")


@router.get("/{job_id}/logs", response_class=Response, responses=LOG_TEXT)
async def job_logs(
    job_id: JobId,
    request: Request,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    stage: Annotated[int | None, Query(ge=0, le=1000, description="One stage's log (from 0); default: all.")] = None,
    tail: Annotated[
        int | None, Query(ge=1, le=100_000, description="Only the last N lines (of each stage, without stage).")
    ] = None,
    follow: Annotated[bool, Query(description="Stream new lines as they are written until the job ends.")] = False,
) -> Response:
    """What each stage's process printed (``stage.log`` in its folder). A stage that has not started has an
    empty log. With ``follow=true`` the answer is a stream: whole lines as the stages write them, stage after
    stage, ending once the job is finished and every log is read to its end (or when the client goes away)."""

    def read():
        return jobs.read_job(job_id, principal)

    job = await anyio.to_thread.run_sync(read, limiter=database_limiter())  # 404 before anything is sent
    _check_stage(job, stage)
    root = settings.artifacts_root
    if not follow:
        text = await anyio.to_thread.run_sync(stage_logs.read_logs, root, job, stage, tail)
        return PlainTextResponse(text)
    follower = stage_logs.LogFollower(root, stage, tail)

    async def stream() -> AsyncIterator[str]:
        snapshot = job
        while True:
            text = await anyio.to_thread.run_sync(follower.poll, snapshot)  # the snapshot is older than the files
            if text:
                yield text
            if follower.done:
                return
            await asyncio.sleep(FOLLOW_POLL_S)
            if await request.is_disconnected():  # servers on ASGI spec 2.4 only say so when asked
                return
            try:
                snapshot = await anyio.to_thread.run_sync(read, limiter=database_limiter())
            except NotFound:  # deleted meanwhile
                return

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/plain", headers=headers)
