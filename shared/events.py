"""The job event log: what a job's event stream sends, written where the changes are written.

- ``state``: the job's state changed (``{"state", "error"}``);
- ``stage``: a stage's state changed (``{"stage_index", "type", "state", "epoch", "epochs", "error"}``);
- ``epoch``: a stage stored (or, resumed, stored again) an epoch's metrics (``{"stage_index", "epoch", "values"}``).

ORM changes are caught by one ``before_flush`` hook, so every ``move_job``/``move_stage`` of shared/states.py and
every new metric row is logged in the same transaction as the change. The state machine's compare-and-set
UPDATEs bypass the ORM and call ``stage_changed`` themselves. A job or stage being created logs nothing: the
stream's first event is the whole job document.

Ordering: the stream sends a job's events by ``id``. SQLite has one writer at a time, so ids become visible in
order. PostgreSQL hands out ids before commit, so a transaction could commit a lower id after a reader has
passed a higher one; the reader therefore only reads events older than ``SETTLE_S`` by the database's clock
(each write transaction here lasts milliseconds), trading that much latency for no gaps."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, attributes

from shared.models import Job, JobEvent, MetricRow, Stage

SETTLE_S = 2.0


def stage_data(stage: Stage) -> dict:
    return {
        "stage_index": stage.index,
        "type": stage.type,
        "state": stage.state,
        "epoch": stage.epoch,
        "epochs": stage.epochs,
        "error": stage.error,
    }


def stage_changed(session: Session, stage: Stage) -> None:
    """Log a stage's state after a bulk UPDATE changed it (the caller has refreshed ``stage``)."""
    session.add(JobEvent(job_id=stage.job_id, kind="stage", stage_index=stage.index, data=stage_data(stage)))


def _state_changed(obj) -> bool:
    return attributes.get_history(obj, "state").has_changes()


def _events_for(session: Session, dirty: Iterable, new: Iterable) -> list[JobEvent]:
    """The events one flush logs, in a fixed order (a flush's objects come as sets): epochs, then stage changes by
    stage index, then the job's own state, so 'stage 0 succeeded' precedes 'stage 1 queued' and both the job's end."""
    dirty, new = list(dirty), list(new)
    epochs, stage_changes, job_changes = [], [], []
    rewritten = [obj for obj in dirty if isinstance(obj, MetricRow) and attributes.get_history(obj, "values").has_changes()]
    for obj in [*new, *rewritten]:  # a resumed stage that repeats an epoch replaces its row: a new epoch event
        if isinstance(obj, MetricRow):
            with session.no_autoflush:
                stage = obj.stage or session.get(Stage, obj.stage_id)
            data = {"stage_index": stage.index, "epoch": obj.epoch, "values": obj.values}
            epochs.append(JobEvent(job_id=stage.job_id, kind="epoch", stage_index=stage.index, data=data))
    for obj in dirty:
        if isinstance(obj, Stage) and _state_changed(obj):
            stage_changes.append(
                JobEvent(job_id=obj.job_id, kind="stage", stage_index=obj.index, data=stage_data(obj))
            )
        elif isinstance(obj, Job) and _state_changed(obj):
            job_changes.append(JobEvent(job_id=obj.id, kind="state", data={"state": obj.state, "error": obj.error}))
    epochs.sort(key=lambda e: (e.stage_index, e.data["epoch"]))
    stage_changes.sort(key=lambda e: e.stage_index)
    return [*epochs, *stage_changes, *job_changes]


@event.listens_for(Session, "before_flush")
def _log_changes(session: Session, _context, _instances) -> None:
    for logged in _events_for(session, list(session.dirty), list(session.new)):
        session.add(logged)


def settles_at_once() -> bool:
    """Whether this database makes ids visible in order (SQLite: one writer at a time), so no settle window."""
    from shared.settings import get_settings

    return get_settings().database_url.startswith("sqlite")


def _settled(query, session: Session):
    if session.get_bind().dialect.name == "postgresql":
        return query.where(JobEvent.created_at < func.now() - text(f"interval '{SETTLE_S} seconds'"))
    return query


def read_after(session: Session, job_id: str, after: int, limit: int = 500) -> list[JobEvent]:
    """A job's events with id above ``after``, oldest first (on PostgreSQL, only those past the settle window)."""
    query = _settled(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after), session)
    return list(session.scalars(query.order_by(JobEvent.id).limit(limit)))


def last_id(session: Session, job_id: str) -> int:
    """The id of the job's newest settled event (0 when none): where a new stream starts after its snapshot."""
    return session.scalar(_settled(select(func.max(JobEvent.id)).where(JobEvent.job_id == job_id), session)) or 0
