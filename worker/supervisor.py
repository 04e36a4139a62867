"""The stage supervisor: starts a stage's own process and owns it while it runs (heartbeat of the lease,
self-fencing when the database is away, the cancel grace period, kill). It changes no state: it returns how
the process ended and worker/settle.py records that."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from shared.db import session_scope
from shared.models import Job, Stage, as_utc, utcnow
from shared.settings import Settings
from shared.states import StageState
from worker.ultralytics_ext.offline import ultralytics_env

log = logging.getLogger(__name__)


def describe_exit(returncode: int) -> str:
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


def heartbeat(stage_id: int, job_id: str, me: str):
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


def _kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


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
        beat = heartbeat(stage_id, job_id, me)
        if beat is None:
            if time.monotonic() - renewed_at > fence_after_s:
                log.warning("stage %s: lease not renewed for %.0fs; killing its process before the lease expires",
                            stage_id, time.monotonic() - renewed_at)
                _kill(process)
                return None
            continue
        renewed_at = time.monotonic()
        still_ours, cancel_requested_at = beat
        if not still_ours:
            log.warning("stage %s: lease lost to the reaper; killing its process", stage_id)
            _kill(process)
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
