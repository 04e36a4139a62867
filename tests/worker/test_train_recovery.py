"""Out-of-memory recovery and GPU tiers through real (tiny, CPU) Ultralytics training runs.

The CUDA out-of-memory error is injected with the test-only ``STAGERUN_FAULT_OOM_EPOCHS`` setting: the
train stage raises ``torch.cuda.OutOfMemoryError`` at the start of the listed epochs, as a GPU would."""

from __future__ import annotations

import pytest

from shared import jobs
from shared.auth import LOCAL_ADMIN
from shared.db import session_scope
from shared.schemas import JobCreate
from worker.pipeline import run_job_locally

pytestmark = pytest.mark.slow


def run_job(settings, dataset: str, **train) -> str:
    stage = {"type": "train", "epochs": 3, "imgsz": 64, "batch": 4, "workers": 0, "seed": 0, **train}
    spec = JobCreate.model_validate({"dataset": dataset, "model": "yolov8n.yaml", "stages": [stage]})
    with session_scope() as session:
        job, _ = jobs.create_job(session, settings, spec, LOCAL_ADMIN)
    run_job_locally(job.id)
    return job.id


def read(client, job_id: str) -> tuple[dict, list[dict]]:
    job = client.get(f"/v1/jobs/{job_id}").json()
    rows = client.get(f"/v1/jobs/{job_id}/metrics").json()["rows"]
    return job, rows


def test_oom_mid_training_halves_batch_and_resumes_from_last_pt(client, embedded, tiny_dataset, monkeypatch):
    monkeypatch.setenv("STAGERUN_FAULT_OOM_EPOCHS", "2,3")
    job_id = run_job(embedded, tiny_dataset)
    job, rows = read(client, job_id)
    stage = job["stages"][0]
    assert job["state"] == "succeeded", stage["error"]
    assert [r["epoch"] for r in rows] == [1, 2, 3]  # no epoch lost, none twice
    steps = stage["info"]["oom_recovery"]
    assert [(s["epoch"], s["action"]) for s in steps] == [(2, "batch 4 -> 2"), (3, "batch 2 -> 1")]
    assert "injected" in steps[0]["error"]
    assert stage["info"]["resumed"] == [
        {"from_epoch": 2, "checkpoint": f"{stage['dir']}/weights/last.pt"},
        {"from_epoch": 3, "checkpoint": f"{stage['dir']}/weights/last.pt"},
    ]
    log = (embedded.artifacts_root / stage["dir"] / "stage.log").read_text()
    assert "Resuming training" in log and "from epoch 2 to 3 total epochs" in log
    assert "from epoch 3 to 3 total epochs" in log
    assert stage["results"]["epochs_completed"] == 3 and stage["results"]["weights"].endswith("weights/best.pt")


def test_oom_with_nothing_left_to_shrink_fails_clearly(client, embedded, tiny_dataset, monkeypatch):
    monkeypatch.setenv("STAGERUN_FAULT_OOM_EPOCHS", "1,1,1,1,1")  # 4 steps, then nothing is left
    job_id = run_job(embedded, tiny_dataset, epochs=1, imgsz=128)
    job, rows = read(client, job_id)
    stage = job["stages"][0]
    assert job["state"] == "failed" and stage["state"] == "failed" and rows == []
    assert [s["action"] for s in stage["info"]["oom_recovery"]] == [
        "batch 4 -> 2",
        "batch 2 -> 1",
        "imgsz 128 -> 96",
        "imgsz 96 -> 64",
        "gave up: nothing left to shrink",
    ]
    assert "out of GPU memory at epoch 1 with batch=1 imgsz=64" in stage["error"]
    assert "nothing left to shrink after 4 recovery step(s)" in job["error"]


def test_batch_auto_on_cpu_picks_the_cpu_tier(client, embedded, tiny_dataset, monkeypatch):
    monkeypatch.setenv("STAGERUN_DEVICE", "cpu")
    job_id = run_job(embedded, tiny_dataset, epochs=1, batch="auto")
    job, rows = read(client, job_id)
    stage = job["stages"][0]
    assert job["state"] == "succeeded", stage["error"]
    assert stage["spec"]["batch"] == "auto"
    assert stage["info"]["gpu_tier"] == {
        "tier": "cpu",
        "free_vram_gb": None,
        "batch": 4,
        "imgsz": 64,  # the tier's 320 is a ceiling; the stage asked for 64
        "model": "yolov8n.yaml",
        "suggested_model_scale": "n",
    }
    args = (embedded.artifacts_root / stage["dir"] / "args.yaml").read_text()
    assert "\nbatch: 4\n" in args and "\nimgsz: 64\n" in args
