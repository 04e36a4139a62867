"""The job and stage state machine. Every state change in stagerun goes through this module.

Job:   queued -> running -> succeeded | failed | cancelled | gated   (queued -> cancelled | failed too)
       gated: a stage's gate failed (shared/gates.py); the stages after it are skipped
Stage: pending -> queued -> running -> succeeded | failed | cancelled
       pending -> cancelled | skipped   (a stage after a failed or cancelled one never runs)
       running -> waiting -> queued     (a fan-out stage (search, k-fold) whose child jobs run: no worker holds
                                         it; a child's end queues it again to take the next step)
       waiting -> cancelled
       running -> queued                (re-queued: its worker's lease expired, its process was killed, or its
                                         gate failed with on_fail retry)
       succeeded at creation            (a re-run job's stage reusing an earlier job's outputs)

Resume (``resume_job``), the one way out of a terminal state: a failed or cancelled job goes back to
queued, its first unfinished stage to queued and the stages after it to pending; succeeded stages stay.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shared import events
from shared.errors import IllegalTransition
from shared.models import Job, Stage, as_utc, utcnow


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    GATED = "gated"

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
    WAITING = "waiting"

    def is_terminal(self) -> bool:
        return self in TERMINAL_STAGE_STATES


TERMINAL_JOB_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.GATED})
TERMINAL_STAGE_STATES = frozenset({StageState.SUCCEEDED, StageState.FAILED, StageState.CANCELLED, StageState.SKIPPED})

JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.GATED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
    JobState.GATED: frozenset(),
}

STAGE_TRANSITIONS: dict[StageState, frozenset[StageState]] = {
    StageState.PENDING: frozenset({StageState.QUEUED, StageState.CANCELLED, StageState.SKIPPED}),
    StageState.QUEUED: frozenset({StageState.RUNNING, StageState.CANCELLED, StageState.FAILED}),
    StageState.RUNNING: frozenset(
        {StageState.SUCCEEDED, StageState.FAILED, StageState.CANCELLED, StageState.QUEUED, StageState.WAITING}
    ),
    StageState.WAITING: frozenset({StageState.QUEUED, StageState.CANCELLED}),
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


def _set_by_compare(session: Session, stage_id: int, rowcount: int) -> bool:
    """After a compare-and-set UPDATE of one stage: whether it took; if so the stage is reloaded and its change
    logged for the event stream (a bulk UPDATE bypasses the ORM's hooks)."""
    if rowcount != 1:
        return False
    stage = session.get(Stage, stage_id)
    session.refresh(stage)
    events.stage_changed(session, stage)
    return True


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
    return _set_by_compare(session, stage_id, result.rowcount)


RESUMABLE_JOB_STATES = frozenset({JobState.FAILED, JobState.CANCELLED})
CANCELLABLE_AT_ONCE = (StageState.PENDING.value, StageState.QUEUED.value, StageState.WAITING.value)


def later_stages(job: Job, stage: Stage) -> list[Stage]:
    return [s for s in job.stages if s.index > stage.index and not StageState(s.state).is_terminal()]


def stage_succeeded(job: Job, stage: Stage, now: datetime | None = None) -> Stage | None:
    """A running stage finished its work: the next stage is queued and returned, or the job ends (succeeded; or
    cancelled, when a cancel came while the stage ran). The caller commits and enqueues."""
    move_stage(stage, StageState.SUCCEEDED, now=now)
    later = later_stages(job, stage)
    if job.cancel_requested_at is not None:
        for rest in later:
            move_stage(rest, StageState.CANCELLED, now=now)
        move_job(job, JobState.CANCELLED, error="cancelled by request", now=now)
        return None
    if later:
        move_stage(later[0], StageState.QUEUED, now=now)
        return later[0]
    move_job(job, JobState.SUCCEEDED, now=now)
    return None


def stage_gated(job: Job, stage: Stage, reason: str, now: datetime | None = None) -> None:
    """A running stage did its work but failed its gate: it succeeded (its outputs stay usable), the stages after
    it are skipped, and the job ends ``gated`` with the reason."""
    move_stage(stage, StageState.SUCCEEDED, now=now)
    for rest in later_stages(job, stage):
        move_stage(rest, StageState.SKIPPED, now=now)
    move_job(job, JobState.GATED, error=f"stage {stage.index + 1} ({stage.type}): {reason}", now=now)


def stage_waiting(stage: Stage, now: datetime | None = None) -> None:
    """A running fan-out stage handed its work to child jobs: it waits, held by no worker, until one ends."""
    move_stage(stage, StageState.WAITING, now=now)
    stage.worker_id = None


def wake_stage(session: Session, stage_id: int, now: datetime | None = None) -> bool:
    """Queue a waiting stage again (one of its child jobs ended). Compare-and-set, so two children ending at
    once queue it once; False when it was not waiting (it runs now and will look at its children itself, or
    it was cancelled). The caller commits and enqueues."""
    now = now or utcnow()
    result = session.execute(
        update(Stage)
        .where(Stage.id == stage_id, Stage.state == StageState.WAITING.value)
        .values(state=StageState.QUEUED.value, queued_at=now, worker_id=None)
        .execution_options(synchronize_session=False)
    )
    return _set_by_compare(session, stage_id, result.rowcount)


def run_again(stage: Stage, now: datetime | None = None) -> None:
    """A running stage goes back to the queue to run once more (its process was killed from outside, or its gate
    failed with on_fail retry); no worker holds it."""
    move_stage(stage, StageState.QUEUED, now=now)


def reused_stage(stage: Stage, now: datetime | None = None) -> None:
    """A new stage that stands for a succeeded stage of an earlier job (a re-run): it starts succeeded."""
    if stage.state not in (None, StageState.PENDING.value):
        raise IllegalTransition(f"stage {stage.index} is {stage.state}; only a new stage can reuse earlier outputs")
    now = now or utcnow()
    stage.state = StageState.SUCCEEDED.value
    stage.queued_at = stage.started_at = stage.finished_at = now


def cancel_job(session: Session, job: Job, now: datetime | None = None) -> None:
    """Ask a job to stop. Stages not yet running are cancelled now, by compare-and-set so a worker claiming one
    at the same moment either gets it first (it then sees the request) or gets nothing; a running stage stops at
    its next batch boundary and keeps what it produced. The caller commits."""
    if JobState(job.state).is_terminal():
        raise IllegalTransition(
            f"job {job.id} is already {job.state}: only a queued or running job can be cancelled", field="job_id"
        )
    now = now or utcnow()
    job.cancel_requested_at = job.cancel_requested_at or now
    cancelled = session.scalars(
        update(Stage)
        .where(Stage.job_id == job.id, Stage.state.in_(CANCELLABLE_AT_ONCE))
        .values(state=StageState.CANCELLED.value, finished_at=now)
        .returning(Stage.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.flush()
    session.expire(job)
    for stage_id in sorted(cancelled):
        stage = session.get(Stage, stage_id)
        session.refresh(stage)
        events.stage_changed(session, stage)
    running = session.scalar(
        select(func.count()).where(Stage.job_id == job.id, Stage.state == StageState.RUNNING.value)
    )
    if not running:
        move_job(job, JobState.CANCELLED, error="cancelled by request", now=now)


def settle_job_after_stage(job: Job, stage: Stage, now: datetime | None = None) -> None:
    """After ``stage`` failed or was cancelled: the stages after it never run and the job ends the same way."""
    later = [s for s in job.stages if s.index > stage.index and not StageState(s.state).is_terminal()]
    if stage.state == StageState.FAILED.value:
        for rest in later:
            move_stage(rest, StageState.SKIPPED, now=now)
        move_job(job, JobState.FAILED, error=f"stage {stage.index + 1} ({stage.type}) failed: {stage.error}", now=now)
    elif stage.state == StageState.CANCELLED.value:
        for rest in later:
            move_stage(rest, StageState.CANCELLED, now=now)
        move_job(job, JobState.CANCELLED, error="cancelled by request", now=now)
    else:
        raise IllegalTransition(f"stage {stage.index} of job {job.id} is {stage.state}, neither failed nor cancelled")


def take_back_lost_stage(
    session: Session, stage: Stage, cutoff: datetime, max_attempts: int, now: datetime | None = None
) -> StageState | None:
    """A running stage whose lease (heartbeat) is older than ``cutoff``: its worker is gone.

    Compare-and-set on the state and the heartbeat, so a worker that renewed its lease meanwhile keeps
    its stage and two reapers never both act. The stage goes back to queued; a job cancelled meanwhile
    ends cancelled; a stage lost ``max_attempts`` times in a row fails, failing the job, rather than kill
    workers forever. ``attempt`` counts the attempts since the stage last made progress: storing a new
    epoch's metrics sets it back to 1 (worker/reporting.py), so a long training that loses its worker now
    and then, but trains on each time, is never failed for it; only losses in a row without a new epoch
    count. Returns the stage's new state, None when it was not lost after all.
    The caller commits (and enqueues a queued stage)."""
    now = now or utcnow()
    job = stage.job
    if job.cancel_requested_at is not None:
        new, error = StageState.CANCELLED, None
    elif stage.attempt >= max_attempts:
        new, error = StageState.FAILED, f"worker lost {stage.attempt} times (lease expired; attempts capped)"
    else:
        new, error = StageState.QUEUED, None
    values: dict = {"state": new.value, "worker_id": None}
    if new is StageState.QUEUED:
        values["queued_at"] = now
    else:
        values.update(finished_at=now, error=error)
    result = session.execute(
        update(Stage)
        .where(Stage.id == stage.id, Stage.state == StageState.RUNNING.value, Stage.heartbeat_at < cutoff)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    session.refresh(stage)
    events.stage_changed(session, stage)
    if new is not StageState.QUEUED:
        settle_job_after_stage(job, stage, now=now)
    return new


def _skip_idle_time(row: Job | Stage, now: datetime) -> None:
    """Move ``started_at`` on by the time the job or stage sat failed or cancelled, so that durations count
    running time only."""
    if row.started_at is not None and row.finished_at is not None:
        row.started_at = as_utc(row.started_at) + (now - as_utc(row.finished_at))


def resume_job(job: Job, now: datetime | None = None) -> Stage:
    """Queue a failed or cancelled job again from its first stage that did not succeed (a train stage
    picks up its own last.pt). Attempts start over. Returns the stage to enqueue; the caller commits."""
    if JobState(job.state) not in RESUMABLE_JOB_STATES:
        raise IllegalTransition(f"job {job.id} is {job.state}; only a failed or cancelled job can be resumed")
    unfinished = [s for s in job.stages if s.state != StageState.SUCCEEDED.value]
    if not unfinished:
        raise IllegalTransition(f"job {job.id} has no stage left to run")
    if any(s.state == StageState.RUNNING.value for s in unfinished):
        raise IllegalTransition(f"job {job.id} still has a running stage")
    now = now or utcnow()
    job.state = JobState.QUEUED.value
    _skip_idle_time(job, now)
    job.finished_at = job.error = job.cancel_requested_at = None
    for stage in unfinished:
        _skip_idle_time(stage, now)
        stage.state = StageState.PENDING.value
        stage.error = stage.finished_at = stage.worker_id = None
        stage.attempt = 0
    move_stage(unfinished[0], StageState.QUEUED, now=now)
    return unfinished[0]
