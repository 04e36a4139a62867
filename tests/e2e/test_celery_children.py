"""GUIDE pitfall: Celery's prefork children are daemonic, so a DataLoader with workers > 0 dies inside a
task. CPU training never shows it (Ultralytics sets workers=0 on CPU), so prove it directly."""

import json
import time

import pytest

from client.stack import worker_command
from shared.queue import make_celery
from shared.settings import Settings
from tests.e2e.conftest import make_stack

pytestmark = pytest.mark.slow


def test_dataloader_workers_run_in_launched_stage_process_not_in_task(tmp_path_factory):
    stack = make_stack(tmp_path_factory, "children", {})
    upgrade = stack.stagerun("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    stack.start_process("worker", [*worker_command(1, "stagerun"), "--include", "tests.e2e.celery_probe"])
    try:
        settings = Settings(home=stack.home)
        result_path = stack.home / "probe.json"
        make_celery(settings).send_task(
            "stagerun.tests.dataloader_probe", args=[str(result_path)], queue=settings.queue
        )
        deadline = time.monotonic() + 240
        while not result_path.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert result_path.exists(), stack.logs()
        result = json.loads(result_path.read_text())
    finally:
        stack.stop()
    assert "daemonic processes are not allowed to have children" in result["direct"]
    assert result["launched_rc"] == 0 and "batches 4" in result["launched_log"]
