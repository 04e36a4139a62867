"""Runs a job's stages in order. The same code serves a Celery worker (one task per stage, the next
stage enqueued when one succeeds) and ``stagerun run FILE`` (the same steps in a loop, no broker).

A stage: claimed here (shared/states.py), run in its own process by worker/supervisor.py, its end recorded
by worker/settle.py."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

from sqlalchemy import select

from shared import log_format
from shared.db import session_scope
from shared.models import Job, Stage
from shared.settings import get_settings
from shared.states import JobState, StageState, claim_stage, move_job
from worker.reporting import with_retry
from worker.settle import finish_stage
from worker.stages.base import EXIT_FAILED, EXIT_SUCCEEDED, EXIT_WAITING
from worker.supervisor import describe_exit, launch, run_stage_process

__all__ = ["execute_stage", "finish_stage", "launch", "requeue_queued_stages", "run_job_locally", "worker_id"]

log = logging.getLogger(__name__)
Enqueue = Callable[[int], None]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _record_error(stage_id: int, message: str) -> None:
    def write(session) -> None:
        session.get(Stage, stage_id).error = message

    with_retry(write)


def execute_stage(stage_id: int, enqueue: Enqueue, me: str | None = None) -> str:
    """Claim a queued stage, run it in its own process, record the outcome, enqueue what follows.

    Returns what happened; a stage that is not queued (already claimed, cancelled, finished) is left
    alone, so a duplicate delivery of the same message runs nothing."""
    settings = get_settings()
    me = me or worker_id()
    with session_scope() as session:
        if not claim_stage(session, stage_id, me):
            return "not-claimed"
        stage = session.get(Stage, stage_id)
        job = stage.job
        if job.state == JobState.QUEUED.value:
            move_job(job, JobState.RUNNING)
        stage_dir, job_id, stage_index = settings.artifacts_root / stage.dir, job.id, stage.index
    with log_format.bound(job_id=job_id, stage_id=stage_id, stage_index=stage_index):
        return _run_claimed(settings, stage_id, stage_dir, job_id, me, enqueue)


def _run_claimed(settings, stage_id: int, stage_dir, job_id: str, me: str, enqueue: Enqueue) -> str:
    log.info("stage %s of job %s claimed by %s", stage_id, job_id, me)
    try:
        returncode = run_stage_process(settings, stage_id, stage_dir, job_id, me)
    except OSError as exc:  # the stage folder or its log cannot be written: fail the stage, not the worker
        _record_error(stage_id, f"artifact folder {stage_dir} is not writable: {exc}")
        returncode = EXIT_FAILED
    if returncode is None:
        return "lease-lost"
    to_enqueue = finish_stage(settings, stage_id, returncode, me)
    for next_stage_id in to_enqueue:
        enqueue(next_stage_id)
    if returncode == EXIT_WAITING:
        return "waiting for its child jobs" if stage_id not in to_enqueue else "child jobs ended; queued again"
    if stage_id in to_enqueue:
        return f"{describe_exit(returncode)}; queued again"
    return "succeeded" if returncode == EXIT_SUCCEEDED else describe_exit(returncode)


def run_job_locally(job_id: str, on_stage: Callable[[int, str], None] | None = None) -> str:
    """Run every stage of a job in this process's thread, one after another, without a broker."""
    pending: list[int] = []
    with session_scope() as session:
        first = session.scalar(
            select(Stage.id).where(Stage.job_id == job_id, Stage.state == StageState.QUEUED.value).order_by(Stage.index)
        )
        if first is not None:
            pending.append(first)
    while pending:
        stage_id = pending.pop(0)
        outcome = execute_stage(stage_id, enqueue=pending.append)
        if on_stage is not None:
            on_stage(stage_id, outcome)
    with session_scope() as session:
        return session.get(Job, job_id).state


def requeue_queued_stages(enqueue: Enqueue) -> int:
    """Send every queued stage to the broker again (after a restart the broker may have lost them).
    Harmless for stages already in the broker: a duplicate claims nothing."""
    with session_scope() as session:
        ids = session.scalars(select(Stage.id).where(Stage.state == StageState.QUEUED.value)).all()
    for stage_id in ids:
        enqueue(stage_id)
    return len(ids)
