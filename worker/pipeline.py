"""Runs a job's stages in order. The same code serves a Celery worker (one task per stage, the next
stage enqueued when one succeeds) and ``stagerun run FILE`` (the same steps in a loop, no broker)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from shared.db import session_scope
from shared.jobs import summary
from shared.models import Job, Stage, as_utc, utcnow
from shared.plain_text import strip_ansi
from shared.settings import Settings, get_settings
from shared.states import JobState, StageState, claim_stage, move_job, move_stage, settle_job_after_stage
from shared.storage import job_dir_rel
from worker.reporting import with_retry
from worker.stages.base import EXIT_CANCELLED, EXIT_FAILED, EXIT_SUCCEEDED
from worker.ultralytics_ext.offline import ultralytics_env

log = logging.getLogger(__name__)
Enqueue = Callable[[int], None]
LOG_TAIL_CHARS = 2000


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _log_tail(path: Path) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - LOG_TAIL_CHARS))
        return strip_ansi(handle.read().decode("utf-8", "replace"))


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"killed by signal {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def launch(command: list[str], log_path: Path, settings: Settings) -> subprocess.Popen:
    """Start a non-daemonic process of its own session, output appended to ``log_path``.

    Celery's prefork children are daemonic and may not fork children, so DataLoader workers inside a
    task would die; a process started here may have them (tests/e2e/test_celery_children.py)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **ultralytics_env(settings.yolo_config_dir), "PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log_file:
        return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _heartbeat(stage_id: int, job_id: str, me: str):
    """Renew this worker's lease on the stage, one try. Returns (still ours, when the job's cancel was
    requested), or None when the database did not answer: the caller decides how long it may keep going
    without a renewal. A lease the reaper took back (this worker looked dead) is not renewed."""
    try:
        with session_scope() as session:
            renewed = session.execute(
                update(Stage)
                .where(Stage.id == stage_id, Stage.worker_id == me, Stage.state == StageState.RUNNING.value)
                .values(heartbeat_at=utcnow())
            ).rowcount
            return renewed == 1, session.scalar(select(Job.cancel_requested_at).where(Job.id == job_id))
    except SQLAlchemyError as exc:
        log.warning("stage %s: lease not renewed, the database did not answer (%s)", stage_id, exc.__class__.__name__)
        return None


def run_stage_process(settings: Settings, stage_id: int, stage_dir: Path, job_id: str, me: str) -> int | None:
    """Start the stage's own process and watch it: heartbeat the lease, and kill it if a cancelled
    stage does not stop by itself within the grace period. Returns its exit status, or None when the
    lease was lost (the stage was given to another worker) and the process was killed."""
    process = launch([sys.executable, "-m", "worker.stage_process", str(stage_id)], stage_dir / "stage.log", settings)
    next_heartbeat = time.monotonic() + settings.heartbeat_interval_s
    renewed_at = time.monotonic()
    # give the stage up before the reaper may take it back: its lease expires lease_ttl_s after the last renewal
    fence_after_s = settings.lease_ttl_s - settings.heartbeat_interval_s
    terminated_at: float | None = None
    while True:
        try:
            return process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() < next_heartbeat:
            continue
        next_heartbeat = time.monotonic() + settings.heartbeat_interval_s
        beat = _heartbeat(stage_id, job_id, me)
        if beat is None:
            if time.monotonic() - renewed_at > fence_after_s:
                log.warning("stage %s: lease not renewed for %.0fs; killing its process before the lease expires",
                            stage_id, time.monotonic() - renewed_at)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return None
            continue
        renewed_at = time.monotonic()
        still_ours, cancel_requested_at = beat
        if not still_ours:
            log.warning("stage %s: lease lost to the reaper; killing its process", stage_id)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return None
        if cancel_requested_at is None:
            continue
        waited = (utcnow() - as_utc(cancel_requested_at)).total_seconds()
        if terminated_at is None and waited > settings.cancel_grace_s:
            log.warning("stage %s ignored its cancel for %.0fs; terminating it", stage_id, waited)
            os.killpg(process.pid, signal.SIGTERM)
            terminated_at = time.monotonic()
        elif terminated_at is not None and time.monotonic() - terminated_at > 30:
            os.killpg(process.pid, signal.SIGKILL)


def _write_summary(settings: Settings, job: Job) -> None:
    """Best effort: an unwritable artifact folder must not keep the job's end from being recorded."""
    job_dir = settings.artifacts_root / job_dir_rel(job.id)
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "summary.json").write_text(json.dumps(summary(job), indent=2, default=str))
    except OSError as exc:
        log.warning("job %s: could not write summary.json: %s", job.id, exc)


def finish_stage(settings: Settings, stage_id: int, returncode: int, me: str | None = None) -> int | None:
    """Record how a stage ended and move the job on. Returns the id of the stage to run next.
    With ``me``, only a stage this worker still holds the lease on."""
    next_stage_id = None
    with session_scope() as session:
        stage = session.get(Stage, stage_id)
        job = stage.job
        if stage.state != StageState.RUNNING.value or (me is not None and stage.worker_id != me):
            log.warning("stage %s is %s (worker %s), not ours; leaving it", stage_id, stage.state, stage.worker_id)
            return None
        produced = (stage.results or {}).get("weights")
        if produced and stage.type == "train":
            job.best_weights = produced
        if returncode == EXIT_SUCCEEDED:
            move_stage(stage, StageState.SUCCEEDED)
        elif returncode == EXIT_CANCELLED or job.cancel_requested_at is not None:
            move_stage(stage, StageState.CANCELLED)
        elif returncode < 0 and stage.attempt < settings.max_stage_attempts:
            # killed from outside (the kernel's OOM killer picks the stage process: it holds the most memory)
            _record_kill(stage, returncode)
            move_stage(stage, StageState.QUEUED)
            stage.worker_id = None
            session.flush()
            log.warning("stage %s: its process was %s; queued again (attempt %d)", stage_id,
                        _describe_exit(returncode), stage.attempt)
            return stage.id
        else:
            log_tail = _log_tail(settings.artifacts_root / stage.dir / "stage.log")
            error = stage.error or f"stage process ended with {_describe_exit(returncode)}:\n{log_tail}"
            move_stage(stage, StageState.FAILED, error=error)
        later = [s for s in job.stages if s.index > stage.index and not StageState(s.state).is_terminal()]
        if stage.state == StageState.SUCCEEDED.value and job.cancel_requested_at is None:
            if later:
                move_stage(later[0], StageState.QUEUED)
                next_stage_id = later[0].id
            else:
                move_job(job, JobState.SUCCEEDED)
        elif stage.state == StageState.SUCCEEDED.value:  # succeeded, but the job was cancelled meanwhile
            for rest in later:
                move_stage(rest, StageState.CANCELLED)
            move_job(job, JobState.CANCELLED, error="cancelled by request")
        else:
            settle_job_after_stage(job, stage)
        session.flush()
        if JobState(job.state).is_terminal():
            _write_summary(settings, job)
    return next_stage_id


def _record_kill(stage: Stage, returncode: int) -> None:
    """A stage process killed on its own is handled like a lost worker: run again from its last.pt, within
    the attempt budget (losses in a row without a new epoch; see shared/states.py). Each kill is kept."""
    kills = list((stage.info or {}).get("process_killed", []))
    kills.append({"attempt": stage.attempt, "epoch": stage.epoch, "signal": signal.Signals(-returncode).name,
                  "at": utcnow().isoformat()})
    stage.info = {**(stage.info or {}), "process_killed": kills}


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
        stage_dir, job_id = settings.artifacts_root / stage.dir, job.id
    log.info("stage %s of job %s claimed by %s", stage_id, job_id, me)
    try:
        returncode = run_stage_process(settings, stage_id, stage_dir, job_id, me)
    except OSError as exc:  # the stage folder or its log cannot be written: fail the stage, not the worker
        _record_error(stage_id, f"artifact folder {stage_dir} is not writable: {exc}")
        returncode = EXIT_FAILED
    if returncode is None:
        return "lease-lost"
    next_stage_id = finish_stage(settings, stage_id, returncode, me)
    if next_stage_id is not None:
        enqueue(next_stage_id)
    if next_stage_id == stage_id:
        return f"{_describe_exit(returncode)}; queued again"
    return "succeeded" if returncode == EXIT_SUCCEEDED else _describe_exit(returncode)


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
