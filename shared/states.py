"""The job and stage state machine. Every state change in stagerun goes through this module.

Job:   queued -> running -> succeeded | failed | cancelled   (queued -> cancelled | failed too)
Stage: pending -> queued -> running -> succeeded | failed | cancelled
       pending -> cancelled | skipped   (a stage after a failed or cancelled one never runs)
       running -> queued                (re-queued when its worker's lease expired)
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from shared.errors import IllegalTransition
from shared.models import Job, Stage, utcnow


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def is_terminal(self) -> bool:
        return self in TERMINAL_JOB_STATES


class StageState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    def is_terminal(self) -> bool:
        return self in TERMINAL_STAGE_STATES


TERMINAL_JOB_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
TERMINAL_STAGE_STATES = frozenset({StageState.SUCCEEDED, StageState.FAILED, StageState.CANCELLED, StageState.SKIPPED})

JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

STAGE_TRANSITIONS: dict[StageState, frozenset[StageState]] = {
    StageState.PENDING: frozenset({StageState.QUEUED, StageState.CANCELLED, StageState.SKIPPED}),
    StageState.QUEUED: frozenset({StageState.RUNNING, StageState.CANCELLED, StageState.FAILED}),
    StageState.RUNNING: frozenset({StageState.SUCCEEDED, StageState.FAILED, StageState.CANCELLED, StageState.QUEUED}),
    StageState.SUCCEEDED: frozenset(),
    StageState.FAILED: frozenset(),
    StageState.CANCELLED: frozenset(),
    StageState.SKIPPED: frozenset(),
}


def can_move_job(current: str, new: str) -> bool:
    return JobState(new) in JOB_TRANSITIONS[JobState(current)]


def can_move_stage(current: str, new: str) -> bool:
    return StageState(new) in STAGE_TRANSITIONS[StageState(current)]


def move_job(job: Job, new: JobState, *, error: str | None = None, now: datetime | None = None) -> None:
    """Change a job's state in memory (the caller commits), refusing illegal transitions."""
    if not can_move_job(job.state, new):
        raise IllegalTransition(f"job {job.id} cannot go from {job.state} to {new}")
    now = now or utcnow()
    job.state = new.value
    if new is JobState.RUNNING and job.started_at is None:
        job.started_at = now
    if new.is_terminal():
        job.finished_at = now
        if error is not None:
            job.error = error


def move_stage(stage: Stage, new: StageState, *, error: str | None = None, now: datetime | None = None) -> None:
    """Change a stage's state in memory (the caller commits), refusing illegal transitions."""
    if not can_move_stage(stage.state, new):
        raise IllegalTransition(f"stage {stage.index} of job {stage.job_id} cannot go from {stage.state} to {new}")
    now = now or utcnow()
    stage.state = new.value
    if new is StageState.QUEUED:
        stage.queued_at = now
        stage.worker_id = None
    elif new is StageState.RUNNING:
        stage.started_at = stage.started_at or now
        stage.heartbeat_at = now
    elif new.is_terminal():
        stage.finished_at = now
        if error is not None:
            stage.error = error


def claim_stage(session: Session, stage_id: int, worker_id: str) -> bool:
    """Atomically move a queued stage to running for this worker.

    A compare-and-set in the database, so a second delivery of the same stage message (broker
    redelivery, a duplicate enqueue) claims nothing and runs nothing. The caller commits."""
    now = utcnow()
    result = session.execute(
        update(Stage)
        .where(Stage.id == stage_id, Stage.state == StageState.QUEUED.value)
        .values(
            state=StageState.RUNNING.value,
            worker_id=worker_id,
            attempt=Stage.attempt + 1,
            heartbeat_at=now,
            started_at=func.coalesce(Stage.started_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
