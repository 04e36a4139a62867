"""A task loaded only by tests/e2e/test_celery_children.py into a real Celery worker (``--include``).

It tries a DataLoader with two workers straight inside the prefork child, then in a process started
by ``worker.pipeline.launch``, the launcher every stage runs through, and writes what happened."""

import json
import sys
from pathlib import Path

from shared.settings import get_settings
from worker.celery_app import app
from worker.pipeline import launch

DATALOADER = """
import torch
from torch.utils.data import DataLoader, TensorDataset
batches = list(DataLoader(TensorDataset(torch.arange(16.0)), batch_size=4, num_workers=2))
print("batches", len(batches))
"""


@app.task(name="stagerun.tests.dataloader_probe")
def dataloader_probe(result_path: str) -> None:
    result = Path(result_path)
    try:
        exec(DATALOADER, {})
        direct = "ok"
    except Exception as exc:  # expected: daemonic processes are not allowed to have children
        direct = f"{type(exc).__name__}: {exc}"
    log_path = result.with_suffix(".log")
    returncode = launch([sys.executable, "-c", DATALOADER], log_path, get_settings()).wait(timeout=300)
    result.write_text(json.dumps({"direct": direct, "launched_rc": returncode, "launched_log": log_path.read_text()}))
