"""Takes back stages whose worker is gone, and re-sends queued stages the broker may have lost.

The database decides what runs; the broker only delivers. A running stage holds a lease (worker id,
heartbeat) that its worker renews every ``heartbeat_interval_s``; when a worker dies (SIGKILL, power,
OOM killer) the lease expires after ``lease_ttl_s`` and any worker's reaper queues the stage again,
where a train stage resumes from its own last.pt. Every change is a compare-and-set in the database,
so reapers on many workers and duplicate messages are harmless."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from shared import fanout
from shared.db import session_scope
from shared.models import Stage, as_utc, utcnow
from shared.settings import Settings
from shared.states import StageState, take_back_lost_stage, wake_stage
from worker.summary import write_summary

log = logging.getLogger(__name__)


@dataclass
class ReapReport:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)
    woken: list[int] = field(default_factory=list)


class Reaper:
    """One pass with ``reap_once``; ``start`` runs passes in a daemon thread of the worker's main process."""

    def __init__(self, settings: Settings, enqueue):
        self.settings = settings
        self.enqueue = enqueue
        self._last_sent: dict[int, float] = {}  # stage id -> monotonic time this reaper last sent it
        self._stop = threading.Event()

    def reap_once(self) -> ReapReport:
        report = ReapReport()
        self._take_back_lost(report)
        self._resend_unclaimed(report)
        self._wake_waiting(report)
        for stage_id in report.requeued + report.resent + report.woken:
            self.enqueue(stage_id)
            self._last_sent[stage_id] = time.monotonic()
        return report

    def _take_back_lost(self, report: ReapReport) -> None:
        now = utcnow()
        cutoff = now - timedelta(seconds=self.settings.lease_ttl_s)
        with session_scope() as session:
            lost = session.scalars(
                select(Stage).where(Stage.state == StageState.RUNNING.value, Stage.heartbeat_at < cutoff)
            ).all()
            for stage in lost:
                worker = stage.worker_id
                new = take_back_lost_stage(session, stage, cutoff, self.settings.max_stage_attempts, now=now)
                if new is None:
                    continue
                log.warning("stage %s: lease of %s expired (attempt %d); now %s", stage.id, worker, stage.attempt, new)
                if new is StageState.QUEUED:
                    report.requeued.append(stage.id)
                elif new is StageState.FAILED:
                    report.failed.append(stage.id)
                else:
                    report.cancelled.append(stage.id)
            session.commit()
            for stage_id in report.failed + report.cancelled:
                write_summary(self.settings, session.get(Stage, stage_id).job)

    def _resend_unclaimed(self, report: ReapReport) -> None:
        """Queued in the database for ``requeue_queued_after_s`` and unclaimed: the broker may have lost the
        message (a Redis restart without persistence); send it again, at most once per that interval."""
        now = utcnow()
        wait_s = self.settings.requeue_queued_after_s
        with session_scope() as session:
            queued = session.execute(
                select(Stage.id, Stage.queued_at).where(Stage.state == StageState.QUEUED.value)
            ).all()
        for stage_id, queued_at in queued:
            if stage_id in report.requeued or queued_at is None:
                continue
            waited = (now - as_utc(queued_at)).total_seconds()
            sent_ago = time.monotonic() - self._last_sent.get(stage_id, float("-inf"))
            if waited >= wait_s and sent_ago >= wait_s:
                report.resent.append(stage_id)

    def _wake_waiting(self, report: ReapReport) -> None:
        """A fan-out stage waiting on a child that has ended (a child failed by this reaper, or a settle step
        that died between the two writes): queue it again."""
        with session_scope() as session:
            waiting = session.scalars(select(Stage).where(Stage.state == StageState.WAITING.value)).all()
            for stage in waiting:
                if fanout.ended_while_running(session, (stage.info or {}).get("waiting_on", [])) and wake_stage(
                    session, stage.id
                ):
                    report.woken.append(stage.id)
            session.commit()

    def run_forever(self) -> None:
        while not self._stop.wait(self.settings.reaper_interval_s):
            try:
                report = self.reap_once()
            except Exception:  # the database or broker is briefly away: try again next interval
                log.exception("reaper pass failed")
                continue
            if report.resent:
                log.info("re-sent %d unclaimed queued stage(s) to the broker", len(report.resent))

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="stagerun-reaper", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
