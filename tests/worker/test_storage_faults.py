"""A full disk or an unwritable artifact folder fails the stage with that message, through a real stage
process and real training; the job ends failed, never stuck in running.

We run as root, for whom permission bits do not block writes; the mechanisms used work for root: a
regular file where the job folder should be, the immutable attribute (``chattr +i``), and a tiny tmpfs
(a real ENOSPC). The last two need privileges a container may lack and are skipped, saying so, there."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest

from shared import jobs
from shared.auth import LOCAL_ADMIN
from shared.db import session_scope
from shared.models import Job
from shared.schemas import JobCreate
from worker.pipeline import run_job_locally

pytestmark = pytest.mark.slow


def create_job(settings, dataset: str) -> Job:
    stage = {"type": "train", "epochs": 2, "imgsz": 64, "batch": 4, "workers": 0, "seed": 0}
    spec = JobCreate.model_validate({"dataset": dataset, "model": "yolov8n.yaml", "stages": [stage]})
    with session_scope() as session:
        job, _ = jobs.create_job(session, settings, spec, LOCAL_ADMIN)
        return job


def outcome(job_id: str) -> tuple[str, str, str]:
    with session_scope() as session:
        job = session.get(Job, job_id)
        return job.state, job.stages[0].state, job.stages[0].error or ""


def privileged(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"{what} is not permitted here: {done.stderr.strip()}")


def test_job_folder_blocked_by_a_file_fails_the_stage(embedded, tiny_dataset):
    job = create_job(embedded, tiny_dataset)
    job_dir = embedded.artifacts_root / "jobs" / job.id
    job_dir.parent.mkdir(parents=True, exist_ok=True)
    job_dir.write_text("not a folder")
    assert run_job_locally(job.id) == "failed"
    job_state, stage_state, error = outcome(job.id)
    assert (job_state, stage_state) == ("failed", "failed")
    assert error.startswith(f"artifact folder {job_dir / '01-train'} is not writable:")


@contextlib.contextmanager
def immutable(folder: Path):
    privileged(["chattr", "+i", str(folder)], "chattr +i")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@contextlib.contextmanager
def tiny_tmpfs(folder: Path):
    privileged(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)], "mounting a tmpfs")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize(("blocker", "errno_text"), [(immutable, "Operation not permitted"), (tiny_tmpfs, "No space")])
def test_unwritable_or_full_weights_folder_fails_the_stage(embedded, tiny_dataset, blocker, errno_text):
    job = create_job(embedded, tiny_dataset)
    weights = embedded.artifacts_root / "jobs" / job.id / "01-train" / "weights"
    weights.mkdir(parents=True)
    with blocker(weights):
        assert run_job_locally(job.id) == "failed"
    job_state, stage_state, error = outcome(job.id)
    assert (job_state, stage_state) == ("failed", "failed")
    assert error.startswith("cannot write artifacts in ") and errno_text in error
    assert str(weights.parent) in error and "disk full or folder not writable" in error
