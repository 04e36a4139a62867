"""``stagerun run FILE``: the same stage code without API or broker, and a user's own .pt as the model."""

import json
import shutil

import pytest
import yaml

from tests.e2e.conftest import make_stack

pytestmark = pytest.mark.slow


def test_run_pipeline_file_then_evaluate_users_weights(tmp_path_factory):
    stack = make_stack(tmp_path_factory, "oneshot", {})
    pipeline = stack.home.parent / "pipeline.yaml"
    pipeline.write_text(
        yaml.safe_dump(
            {
                "dataset": "tiny",
                "model": "yolov8n.yaml",
                "stages": [
                    {"type": "train", "epochs": 1, "imgsz": 64, "batch": 4, "workers": 0},
                    {"type": "evaluate", "imgsz": 64, "batch": 4},
                ],
            }
        )
    )
    done = stack.stagerun("run", str(pipeline))
    assert done.returncode == 0, done.stdout + done.stderr
    assert " succeeded" in done.stdout and "best weights: " in done.stdout
    assert "square" in done.stdout and "mAP50" in done.stdout  # the per-class table
    best = done.stdout.split("best weights: ")[1].split()[0]

    # A user's own weights file, named like the hub weights, placed in the weights root: never downloaded.
    shutil.copy(best, stack.home / "weights" / "yolov8n.pt")
    pipeline.write_text(
        yaml.safe_dump({"dataset": "tiny", "model": "yolov8n.pt", "stages": [{"type": "evaluate", "imgsz": 64}]})
    )
    stack.env["STAGERUN_LOG_FORMAT"] = "json"  # and with structured logs: the stage process logs JSON lines
    done = stack.stagerun("run", str(pipeline))
    del stack.env["STAGERUN_LOG_FORMAT"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stage 1/1 evaluate" in done.stderr and "square" in done.stdout
    job_id = done.stdout.split("job ")[1].split()[0].rstrip(":")
    stage_log = stack.home / "artifacts" / "jobs" / job_id / "01-evaluate" / "stage.log"
    records = [json.loads(line) for line in stage_log.read_text().splitlines() if line.startswith("{")]
    starting = [r for r in records if r["logger"] == "stagerun.stage" and "starting" in r["message"]]
    assert starting and starting[0]["job_id"] == job_id and starting[0]["stage_index"] == 0
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)

    pipeline.write_text(yaml.safe_dump({"dataset": "tiny", "stages": [{"type": "train", "epochs": -1}]}))
    refused = stack.stagerun("run", str(pipeline))
    assert refused.returncode == 2 and "epochs" in refused.stderr
