"""How a stage's process ended becomes state: succeeded (then its gate, the next stage or the job's end),
cancelled, failed, or queued again (killed from outside; a gate retry). Every change goes through
shared/states.py; this module decides which one from the exit status and the stored results."""

from __future__ import annotations

import logging
import shutil
import signal
from pathlib import Path

from pydantic import TypeAdapter

from shared import fanout
from shared.db import session_scope
from shared.gates import judge, previous_value
from shared.models import Job, Stage, utcnow
from shared.plain_text import strip_ansi
from shared.schemas import StageSpec
from shared.settings import Settings
from shared.stage_kinds import Product, produces
from shared.states import (
    JobState,
    StageState,
    move_stage,
    run_again,
    settle_job_after_stage,
    stage_gated,
    stage_succeeded,
    stage_waiting,
)
from worker.stages.base import EXIT_CANCELLED, EXIT_SUCCEEDED, EXIT_WAITING
from worker.summary import write_summary
from worker.supervisor import describe_exit

log = logging.getLogger(__name__)
LOG_TAIL_CHARS = 2000
KEPT_ON_RETRY = ("stage.log", "data.yaml")


def _log_tail(path: Path) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - LOG_TAIL_CHARS))
        return strip_ansi(handle.read().decode("utf-8", "replace"))


def finish_stage(settings: Settings, stage_id: int, returncode: int, me: str | None = None) -> list[int]:
    """Record how a stage ended and move the job on. Returns the ids of the stages to send to the broker: the next
    stage (the same stage when it runs again), a fan-out stage's children, a parent stage woken by this job's end.
    With ``me``, only a stage this worker still holds the lease on."""
    with session_scope() as session:
        stage = session.get(Stage, stage_id)
        job = stage.job
        fanout.parent_stage(session, job, lock=True)  # before this job's end is written: see shared/fanout.py
        if stage.state != StageState.RUNNING.value or (me is not None and stage.worker_id != me):
            log.warning("stage %s is %s (worker %s), not ours; leaving it", stage_id, stage.state, stage.worker_id)
            return []
        produced = (stage.results or {}).get(Product.WEIGHTS.results_key)
        if produced and produces(stage.type, Product.WEIGHTS):
            job.best_weights = produced
        to_enqueue: list[int] = []
        next_stage = None
        if returncode == EXIT_WAITING:
            to_enqueue += _after_waiting(session, job, stage)
        elif returncode == EXIT_SUCCEEDED:
            next_stage = _after_success(settings, job, stage)
        elif returncode == EXIT_CANCELLED or job.cancel_requested_at is not None:
            move_stage(stage, StageState.CANCELLED)
            settle_job_after_stage(job, stage)
        elif returncode < 0 and stage.attempt < settings.max_stage_attempts:
            # killed from outside (the kernel's OOM killer picks the stage process: it holds the most memory)
            _record_kill(stage, returncode)
            run_again(stage)
            log.warning("stage %s: its process was %s; queued again (attempt %d)", stage_id,
                        describe_exit(returncode), stage.attempt)
            next_stage = stage
        else:
            log_tail = _log_tail(settings.artifacts_root / stage.dir / "stage.log")
            error = stage.error or f"stage process ended with {describe_exit(returncode)}:\n{log_tail}"
            move_stage(stage, StageState.FAILED, error=error)
            settle_job_after_stage(job, stage)
        session.flush()
        if next_stage is not None:
            to_enqueue.insert(0, next_stage.id)
        if JobState(job.state).is_terminal():
            to_enqueue += _after_job_end(session, job)
            write_summary(settings, job)
        return to_enqueue


def _after_waiting(session, job: Job, stage: Stage) -> list[int]:
    """A fan-out stage handed its work to child jobs: it waits for them, or runs again at once when one of them
    ended while it was looking (the row is written first, so a child ending now sees it waiting and wakes it)."""
    if job.cancel_requested_at is not None:
        move_stage(stage, StageState.CANCELLED)
        settle_job_after_stage(job, stage)
        return []
    stage_waiting(stage)
    session.flush()
    if fanout.ended_while_running(session, (stage.info or {}).get("waiting_on", [])):
        move_stage(stage, StageState.QUEUED)
        return [stage.id]
    return fanout.queued_child_stages(session, job.id, stage.index)


def _after_job_end(session, job: Job) -> list[int]:
    """A job ended: a parent waiting on it wakes; a parent that failed stops its children."""
    if job.state != JobState.SUCCEEDED.value:
        fanout.cancel_children(session, job)
    pruned = next(((s.info or {}).get("pruned") for s in job.stages if (s.info or {}).get("pruned")), None)
    if pruned is not None and job.state == JobState.CANCELLED.value:
        job.error = f"pruned by its search: {pruned['reason']}"
    else:
        fanout.note_parent_cancel(session, job)
    woken = fanout.wake_parent(session, job)
    return [] if woken is None else [woken]


def _after_success(settings: Settings, job: Job, stage: Stage) -> Stage | None:
    """A stage that did its work: its gate (if any) decides whether the job goes on, stops gated, or runs the
    stage once more."""
    spec = TypeAdapter(StageSpec).validate_python(stage.spec)
    gate = getattr(spec, "gate", None)
    if gate is None or job.cancel_requested_at is not None:
        return stage_succeeded(job, stage)
    earlier = [(s.results or {}).get("metrics") for s in job.stages[: stage.index]]
    previous = previous_value(earlier, gate.metric, gate.class_)
    verdict = judge(gate, (stage.results or {}).get("metrics"), previous)
    tries = list((stage.info or {}).get("gate", {}).get("tries", []))
    tries.append({**verdict.as_info(gate, previous), "at": utcnow().isoformat(), "spec": dict(stage.spec)})
    earlier_gate = (stage.info or {}).get("gate", {})
    stage.info = {
        **(stage.info or {}),
        "gate": {**earlier_gate, "passed": verdict.passed, "reason": verdict.reason, "tries": tries},
    }
    if verdict.passed:
        return stage_succeeded(job, stage)
    if gate.on_fail == "retry" and len(tries) == 1:
        _prepare_gate_retry(settings, stage, gate.factor)
        log.warning("stage %s: %s; running it once more with class weights to the power %s", stage.id,
                    verdict.reason, gate.factor)
        run_again(stage)
        return stage
    stage_gated(job, stage, verdict.reason + (" (after one retry)" if len(tries) > 1 else ""))
    return None


def _prepare_gate_retry(settings: Settings, stage: Stage, factor: float) -> None:
    """The retry trains from the same start with stronger class weights (sqrt_inverse ones when the first try
    had none); the first try's outputs move to ``gate-try-1/`` in the stage's folder, kept, out of the retry's
    way (it must not resume from them)."""
    spec = dict(stage.spec)
    spec["class_weight_power"] = factor
    if spec.get("class_weights") is None and not (stage.info or {}).get("class_weights"):
        spec["class_weights"] = "sqrt_inverse"
    stage.spec = spec
    stage_dir = settings.artifacts_root / stage.dir
    aside = stage_dir / "gate-try-1"
    aside.mkdir(parents=True, exist_ok=True)
    for entry in list(stage_dir.iterdir()):
        if entry.name not in KEPT_ON_RETRY and entry != aside:
            shutil.move(str(entry), aside / entry.name)
    first_try = {"folder": f"{stage.dir}/{aside.name}", "results": dict(stage.results or {})}
    stage.info = {**stage.info, "gate": {**stage.info["gate"], "first_try": first_try}}
    stage.results = None
    stage.epoch = 0
    stage.attempt = 0


def _record_kill(stage: Stage, returncode: int) -> None:
    """A stage process killed on its own is handled like a lost worker: run again from its last.pt, within
    the attempt budget (losses in a row without a new epoch; see shared/states.py). Each kill is kept."""
    kills = list((stage.info or {}).get("process_killed", []))
    kills.append({"attempt": stage.attempt, "epoch": stage.epoch, "signal": signal.Signals(-returncode).name,
                  "at": utcnow().isoformat()})
    stage.info = {**(stage.info or {}), "process_killed": kills}
