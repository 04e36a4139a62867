"""Database tables. The database is the source of truth for job and stage state and for metrics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_job_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("parent_job_id", "parent_stage_index", "child_index", name="uq_jobs_parent_child"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    name: Mapped[str] = mapped_column(String(200))
    tags: Mapped[list] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), index=True)
    dataset: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    best_weights: Mapped[str | None] = mapped_column(Text, doc="Path relative to the artifacts root.")
    owner: Mapped[str | None] = mapped_column(String(100), index=True, doc="Owner name of the token that made it.")
    parent_job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"),
        index=True,
        doc="Set on a child job: a trial of a search stage or a fold of a k-fold stage of that job.",
    )
    parent_stage_index: Mapped[int | None] = mapped_column(Integer, doc="The parent's fan-out stage.")
    child_index: Mapped[int | None] = mapped_column(Integer, doc="The trial number or fold index.")

    stages: Mapped[list[Stage]] = relationship(
        back_populates="job", order_by="Stage.index", cascade="all, delete-orphan"
    )


class Stage(Base):
    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("job_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), index=True)
    spec: Mapped[dict] = mapped_column(JSON)
    dir: Mapped[str] = mapped_column(Text, doc="Stage artifact folder relative to the artifacts root.")
    epoch: Mapped[int] = mapped_column(Integer, default=0, doc="Epochs completed.")
    epochs: Mapped[int | None] = mapped_column(Integer)
    latest_metrics: Mapped[dict | None] = mapped_column(JSON)
    results: Mapped[dict | None] = mapped_column(JSON, doc="What the stage produced: weights, metrics, files.")
    info: Mapped[dict | None] = mapped_column(
        JSON,
        doc="What the stage recorded about how it ran, one key per topic: class weights used, boxes removed by "
        "augmentation, starvation report, out-of-memory recovery steps, GPU tier.",
    )
    error: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    job: Mapped[Job] = relationship(back_populates="stages")
    metric_rows: Mapped[list[MetricRow]] = relationship(
        back_populates="stage", order_by="MetricRow.epoch", cascade="all, delete-orphan"
    )


class MetricRow(Base):
    """One row of Ultralytics' results.csv, written as the epoch ends."""

    __tablename__ = "metric_rows"
    __table_args__ = (UniqueConstraint("stage_id", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stage_id: Mapped[int] = mapped_column(ForeignKey("stages.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    stage: Mapped[Stage] = relationship(back_populates="metric_rows")


class JobEvent(Base):
    """The append-only log behind a job's event stream: a state change of the job or a stage, or an epoch's
    metrics, written in the same transaction as the change (shared/events.py). ``id`` orders a job's events
    and is the stream's ``id:``, so a client that reconnects with ``Last-Event-ID`` gets exactly what it missed."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    stage_index: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), doc="The database's clock (the stream's settle window)."
    )


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored. Tokens with the same owner see the same jobs."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Dataset(Base):
    """A registered dataset: a folder under the datasets root, with its validation result and profile."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    owner: Mapped[str | None] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text, doc="Folder relative to the datasets root.")
    source: Mapped[str] = mapped_column(String(16), doc="'folder' or 'upload'.")
    valid: Mapped[bool] = mapped_column(Boolean, default=False)
    validation: Mapped[dict | None] = mapped_column(JSON)
    profile: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
