"""Database writes a running stage makes: progress, one metric row per epoch, results, cancel checks.

Every write is a short transaction of its own, retried when the database is briefly unavailable,
so that a flaky connection delays a row rather than losing the epoch."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from shared.db import session_scope
from shared.models import Job, MetricRow, Stage

log = logging.getLogger(__name__)
T = TypeVar("T")


def with_retry(action: Callable[[Session], T], attempts: int = 8, first_delay_s: float = 0.25) -> T:
    delay = first_delay_s
    for attempt in range(1, attempts + 1):
        try:
            with session_scope() as session:
                return action(session)
        except OperationalError as exc:
            if attempt == attempts:
                raise
            log.warning("database write failed (%s); retry %d/%d in %.1fs", exc.orig, attempt, attempts, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


class StageReporter:
    """Writes what one stage process reports about itself."""

    def __init__(self, stage_id: int, job_id: str, cancel_check_interval_s: float = 0.5):
        self.stage_id = stage_id
        self.job_id = job_id
        self.cancel_check_interval_s = cancel_check_interval_s
        self._last_cancel_check = 0.0
        self._cancelled = False

    def progress(self, epoch_done: int, epochs: int | None) -> None:
        def write(session: Session) -> None:
            stage = session.get(Stage, self.stage_id)
            stage.epoch = epoch_done
            if epochs is not None:
                stage.epochs = epochs

        with_retry(write)

    def epoch_row(self, values: dict, epochs: int | None) -> None:
        """Store one results.csv row; a repeated epoch (a resumed stage) replaces its earlier row."""
        epoch = int(values["epoch"])

        def write(session: Session) -> None:
            row = session.scalar(select(MetricRow).where(MetricRow.stage_id == self.stage_id, MetricRow.epoch == epoch))
            stage = session.get(Stage, self.stage_id)
            if row is None:
                session.add(MetricRow(stage_id=self.stage_id, epoch=epoch, values=values))
                stage.attempt = min(stage.attempt, 1)  # progress: earlier losses no longer count (states.py)
            else:
                row.values = values
            stage.epoch = epoch
            stage.latest_metrics = values
            if epochs is not None:
                stage.epochs = epochs

        with_retry(write)

    def results(self, results: dict) -> None:
        def write(session: Session) -> None:
            session.get(Stage, self.stage_id).results = results

        with_retry(write)

    def record(self, topic: str, value: object) -> None:
        """Store one topic of ``stage.info`` (class weights used, recovery steps, ...), keeping the others."""

        def write(session: Session) -> None:
            stage = session.get(Stage, self.stage_id)
            stage.info = {**(stage.info or {}), topic: value}

        with_retry(write)

    def info(self) -> dict:
        """What earlier attempts of this stage recorded in ``stage.info``."""
        return with_retry(lambda session: dict(session.get(Stage, self.stage_id).info or {}))

    def append(self, topic: str, item: object) -> None:
        """Add one item to the list under ``topic`` in ``stage.info``; the list outlives the stage process
        (a resumed stage adds to what the earlier attempts recorded)."""

        def write(session: Session) -> None:
            stage = session.get(Stage, self.stage_id)
            info = stage.info or {}
            stage.info = {**info, topic: [*info.get(topic, []), item]}

        with_retry(write)

    def error(self, message: str) -> None:
        def write(session: Session) -> None:
            session.get(Stage, self.stage_id).error = message

        with_retry(write)

    def cancel_requested(self, force: bool = False) -> bool:
        """True once the job's cancel was requested; asks the database at most once per interval."""
        now = time.monotonic()
        if self._cancelled or (not force and now - self._last_cancel_check < self.cancel_check_interval_s):
            return self._cancelled
        self._last_cancel_check = now

        def read(session: Session) -> bool:
            return session.scalar(select(Job.cancel_requested_at).where(Job.id == self.job_id)) is not None

        self._cancelled = with_retry(read)
        return self._cancelled
