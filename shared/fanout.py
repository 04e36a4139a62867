"""Child jobs of a fan-out stage (search trials, k-fold folds): creating them, reading how they ended, waking the
stage when one ends, and carrying a cancel or a resume of the parent down to them.

A fan-out stage never holds a worker while its children train: it creates them, then waits (``waiting``, see
shared/states.py). Each child is an ordinary job (its stages claimed, leased, resumed from last.pt after a lost
worker like any other), linked by ``parent_job_id``, ``parent_stage_index`` and ``child_index``. When a child ends,
the settle step that ended it queues the waiting stage again (``wake_parent``), which looks at its children and
takes the next step. Locking the parent's stage row before the child's end is written, and the waiting step
re-reading its children after it wrote ``waiting``, means one of the two always sees the other: no end is missed
(the reaper's sweep, worker/reaper.py, is the backstop for a process killed in between)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.auth import Principal
from shared.models import Job, Stage
from shared.schemas import JobCreate
from shared.settings import Settings
from shared.states import JobState, StageState, cancel_job, resume_job, wake_stage

CANCELLED_WITH_PARENT = "cancelled with its parent job"
"""A child's error when its parent's cancel stopped it: a resumed parent resumes such a child."""


def children(session: Session, job_id: str, stage_index: int | None = None) -> list[Job]:
    query = select(Job).where(Job.parent_job_id == job_id)
    if stage_index is not None:
        query = query.where(Job.parent_stage_index == stage_index)
    return list(session.scalars(query.order_by(Job.child_index)))


def parent_stage(session: Session, job: Job, lock: bool = False) -> Stage | None:
    """The fan-out stage ``job`` is a child of; ``lock``: its row locked for the transaction (PostgreSQL)."""
    if job.parent_job_id is None:
        return None
    query = select(Stage).where(Stage.job_id == job.parent_job_id, Stage.index == job.parent_stage_index)
    return session.scalar(query.with_for_update() if lock else query)


def create_child(
    session: Session, settings: Settings, parent: Job, stage_index: int, child_index: int, spec: JobCreate
) -> Job:
    """Store child ``child_index`` of stage ``stage_index`` of ``parent`` (its first stage queued), once: a second
    call for the same child (a driver run again after its process died) returns the first."""
    from shared.jobs import create_job

    existing = child(session, parent.id, stage_index, child_index)
    if existing is not None:
        return existing
    try:
        job, _ = create_job(
            session, settings, spec, Principal(owner=parent.owner or "system"),
            parent=(parent.id, stage_index, child_index),
        )
    except IntegrityError:
        session.rollback()
        return child(session, parent.id, stage_index, child_index)
    return job


def child(session: Session, job_id: str, stage_index: int, child_index: int) -> Job | None:
    return session.scalar(
        select(Job).where(
            Job.parent_job_id == job_id, Job.parent_stage_index == stage_index, Job.child_index == child_index
        )
    )


@dataclass(frozen=True)
class Outcome:
    """How a child stands: ``running`` (not ended), ``succeeded``, ``pruned``, ``failed``, or ``stopped`` (cancelled
    with its parent, to be resumed with it)."""

    status: str
    error: str | None = None


def outcome(job: Job) -> Outcome:
    state = JobState(job.state)
    if not state.is_terminal():
        return Outcome("running")
    if state is JobState.SUCCEEDED:
        return Outcome("succeeded")
    if any((stage.info or {}).get("pruned") for stage in job.stages):
        return Outcome("pruned")
    if state is JobState.CANCELLED and job.error == CANCELLED_WITH_PARENT:
        return Outcome("stopped", job.error)
    return Outcome("failed", job.error or state.value)


def wake_parent(session: Session, job: Job) -> int | None:
    """After ``job`` ended: queue its parent's waiting stage again. Returns that stage's id to enqueue, or None."""
    stage = parent_stage(session, job)
    if stage is None or not JobState(job.state).is_terminal():
        return None
    return stage.id if wake_stage(session, stage.id) else None


def ended_while_running(session: Session, waiting_on: list[str]) -> bool:
    """Whether one of the children a fan-out stage left running has ended since it looked."""
    if not waiting_on:
        return True
    states = session.scalars(select(Job.state).where(Job.id.in_(waiting_on))).all()
    return len(states) < len(set(waiting_on)) or any(JobState(state).is_terminal() for state in states)


def queued_child_stages(session: Session, job_id: str, stage_index: int) -> list[int]:
    """The queued stages of a fan-out stage's children: what the worker sends to the broker after the stage
    created (or resumed) them."""
    return list(
        session.scalars(
            select(Stage.id)
            .join(Job, Stage.job_id == Job.id)
            .where(
                Job.parent_job_id == job_id,
                Job.parent_stage_index == stage_index,
                Stage.state == StageState.QUEUED.value,
            )
            .order_by(Job.child_index, Stage.index)
        )
    )


def cancel_children(session: Session, job: Job) -> int:
    """Cancel every unfinished child of ``job`` (its cancel, or its fan-out stage's failure): a running child stops
    at its next batch, keeping its last.pt. Returns how many. The caller commits."""
    count = 0
    for kid in children(session, job.id):
        if not JobState(kid.state).is_terminal():
            cancel_job(session, kid)
            if JobState(kid.state).is_terminal():
                kid.error = CANCELLED_WITH_PARENT
            count += 1
        count += cancel_children(session, kid)
    return count


def note_parent_cancel(session: Session, job: Job) -> None:
    """A child that ended cancelled while its parent was being cancelled (or had ended) stopped with it."""
    if job.parent_job_id is None or job.state != JobState.CANCELLED.value:
        return
    parent = session.get(Job, job.parent_job_id)
    if parent is not None and (parent.cancel_requested_at is not None or JobState(parent.state).is_terminal()):
        job.error = CANCELLED_WITH_PARENT


def stopping_children(session: Session, job: Job) -> list[str]:
    """Children asked to cancel that have not ended yet (a resume waits for them)."""
    return [kid.id for kid in children(session, job.id)
            if kid.cancel_requested_at is not None and not JobState(kid.state).is_terminal()]


def resume_child(session: Session, job: Job) -> None:
    """A child stopped with its parent goes back to its queue (a train stage resumes from its last.pt)."""
    resume_job(job)
    session.flush()
