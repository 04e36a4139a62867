"""Pipelines through real (tiny, CPU) stage runs: gates that stop a job ``gated`` with the reason, a gate retry
that runs the train stage once more with stronger class weights, and a re-run that reuses earlier outputs."""

from __future__ import annotations

import pytest

from shared import jobs
from shared.auth import LOCAL_ADMIN
from shared.db import session_scope
from shared.models import Job
from shared.schemas import JobCreate
from worker.pipeline import run_job_locally

pytestmark = pytest.mark.slow
TRAIN = {"type": "train", "epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "seed": 0}
EVALUATE = {"type": "evaluate", "imgsz": 64, "batch": 4}


def run(settings, dataset: str, stages: list[dict]) -> str:
    spec = JobCreate.model_validate({"dataset": dataset, "model": "yolov8n.yaml", "stages": stages})
    with session_scope() as session:
        job, _ = jobs.create_job(session, settings, spec, LOCAL_ADMIN)
    run_job_locally(job.id)
    return job.id


def test_a_failed_gate_ends_the_job_gated_with_its_reason(client, embedded, tiny_dataset):
    gate = {"metric": "mAP50", "min": 0.99}
    job_id = run(embedded, tiny_dataset, [TRAIN, {**EVALUATE, "gate": gate}, EVALUATE])
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] == "gated"
    assert [s["state"] for s in job["stages"]] == ["succeeded", "succeeded", "skipped"]
    verdict = job["stages"][1]["info"]["gate"]
    assert verdict["passed"] is False and "below the minimum 0.99" in verdict["reason"]
    measured = job["stages"][1]["results"]["metrics"]["overall"]["mAP50"]
    assert verdict["tries"][0]["value"] == measured
    assert job["error"] == f"stage 2 (evaluate): {verdict['reason']}"
    assert job["best_weights"]  # the trained weights stay downloadable
    assert client.get(f"/v1/jobs/{job_id}/weights").status_code == 200
    assert client.get("/v1/jobs", params={"state": "gated"}).json()["count"] == 1


def test_better_than_previous_compares_with_the_latest_stage_that_measured_it(client, embedded, tiny_dataset):
    gate = {"metric": "recall", "better_than_previous": True}
    job_id = run(embedded, tiny_dataset, [TRAIN, EVALUATE, {**EVALUATE, "gate": gate}])
    job = client.get(f"/v1/jobs/{job_id}").json()
    verdict = job["stages"][2]["info"]["gate"]["tries"][0]
    assert job["state"] == "gated" and verdict["previous"] == job["stages"][1]["results"]["metrics"]["overall"]["recall"]
    assert "not better than the previous" in verdict["reason"]  # the same weights on the same split: equal


def test_a_gate_retry_runs_the_train_stage_once_more_with_stronger_class_weights(client, embedded, tiny_dataset):
    gate = {"metric": "mAP50", "class": "0", "min": 0.99, "on_fail": "retry", "factor": 3}
    job_id = run(embedded, tiny_dataset, [{**TRAIN, "gate": gate}, EVALUATE])
    job = client.get(f"/v1/jobs/{job_id}").json()
    stage = job["stages"][0]
    assert job["state"] == "gated" and job["error"].endswith("(after one retry)")
    tries = stage["info"]["gate"]["tries"]
    assert len(tries) == 2 and not any(t["passed"] for t in tries)
    assert "class_weight_power" not in tries[0]["spec"]
    assert tries[1]["spec"]["class_weight_power"] == 3 and tries[1]["spec"]["class_weights"] == "sqrt_inverse"
    assert stage["spec"]["class_weight_power"] == 3
    first_try = embedded.artifacts_root / stage["dir"] / "gate-try-1"
    assert (first_try / "weights" / "best.pt").is_file()  # the first try's outputs are kept, set aside
    assert (embedded.artifacts_root / stage["dir"] / "weights" / "best.pt").is_file()
    assert stage["info"]["gate"]["first_try"]["folder"] == f"{stage['dir']}/gate-try-1"
    assert stage["info"]["gate"]["first_try"]["results"]["epochs_completed"] == 1
    assert job["stages"][1]["state"] == "skipped"


def test_rerun_reuses_earlier_outputs_without_copying_and_runs_the_rest(client, embedded, tiny_dataset):
    source_id = run(embedded, tiny_dataset, [TRAIN, EVALUATE])
    source = client.get(f"/v1/jobs/{source_id}").json()
    assert source["state"] == "succeeded"
    response = client.post(f"/v1/jobs/{source_id}/rerun", params={"from_stage": 1},
                           json={"overrides": {"stages": {"1": {"conf": 0.2}}}})
    assert response.status_code == 202, response.text
    rerun = response.json()
    assert [s["state"] for s in rerun["stages"]] == ["succeeded", "queued"]
    reused = rerun["stages"][0]
    assert reused["info"]["reused_from"] == {"job": source_id, "stage": 0}
    assert reused["results"] == source["stages"][0]["results"] and reused["dir"] == source["stages"][0]["dir"]
    assert rerun["best_weights"] == source["best_weights"]
    run_job_locally(rerun["id"])
    done = client.get(f"/v1/jobs/{rerun['id']}").json()
    assert done["state"] == "succeeded"
    evaluated = done["stages"][1]
    assert evaluated["spec"]["conf"] == 0.2
    assert evaluated["results"]["evaluated_weights"] == source["stages"][0]["results"]["weights"]
    weights = embedded.artifacts_root / source["best_weights"]
    assert weights.stat().st_nlink == 1  # one file on disk, read by both jobs
    new_folder = embedded.artifacts_root / "jobs" / rerun["id"]
    assert not list(new_folder.rglob("*.pt"))
    with session_scope() as session:
        assert session.get(Job, rerun["id"]).spec["stages"][1]["conf"] == 0.2


def test_rerun_refuses_unfinished_stages_and_overrides_of_reused_ones(client, embedded, tiny_dataset):
    source_id = run(embedded, tiny_dataset, [TRAIN, {**EVALUATE, "gate": {"metric": "mAP50", "min": 0.99}}, EVALUATE])
    skipped = client.post(f"/v1/jobs/{source_id}/rerun", params={"from_stage": 3})
    assert skipped.status_code == 422 and skipped.json()["error"]["field"] == "from_stage"
    unfinished = client.post(f"/v1/jobs/{source_id}/rerun", params={"from_stage": 2.5})
    assert unfinished.status_code == 422
    not_reusable = client.post(f"/v1/jobs/{source_id}/rerun", params={"from_stage": 2}, json={})
    assert not_reusable.status_code == 202  # stages 0 and 1 succeeded (1 failed its gate, but ran)
    frozen = client.post(f"/v1/jobs/{source_id}/rerun", params={"from_stage": 1},
                         json={"overrides": {"stages": {"0": {"epochs": 2}}}})
    assert frozen.status_code == 422 and "reused as it ran" in frozen.text
    assert client.post("/v1/jobs/nope/rerun", params={"from_stage": 0}).status_code == 404


def test_an_export_stage_writes_an_onnx_model_that_matches_pytorch(client, embedded, tiny_dataset):
    import json

    import onnx
    import onnxruntime

    widened = {**TRAIN, "widen_thin": {"target_px": 40, "classes": ["0", "1"]}}
    job_id = run(embedded, tiny_dataset, [widened, {"type": "export", "imgsz": 64, "check_images": 3, "batch": 4}])
    job = client.get(f"/v1/jobs/{job_id}").json()
    stage = job["stages"][1]
    assert job["state"] == "succeeded", stage["error"]
    results = stage["results"]
    onnx_file = embedded.artifacts_root / results["exported"]
    assert onnx_file.suffix == ".onnx" and results["source_weights"] == job["stages"][0]["results"]["weights"]
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 64, 64]
    check = results["check"]
    assert check["images"] == 3 and check["max_box_diff_px"] < 0.5 and check["max_score_diff"] < 0.01
    assert abs(check["torch_mAP50"] - check["onnx_mAP50"]) <= 0.01
    download = client.get(f"/v1/jobs/{job_id}/artifacts/{results['exported'].split('/', 2)[2]}")
    assert download.status_code == 200 and download.headers["content-type"] == "application/octet-stream"
    assert download.content == onnx_file.read_bytes()
    # the widen_thin pad travels in the ONNX metadata, for a deployment to narrow as stagerun's evaluate does
    metadata = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    pad = json.loads(metadata["stagerun_box_pad"])
    assert pad["version"] == 1 and any(w or h for w, h in pad["pad"]) and results["narrowing_px"]


def test_an_export_beyond_its_tolerance_fails_the_stage(client, embedded, tiny_dataset):
    job_id = run(embedded, tiny_dataset, [TRAIN, {"type": "export", "imgsz": 64, "check_images": 2,
                                                  "box_tolerance_px": 1e-9, "score_tolerance": 1e-12}])
    job = client.get(f"/v1/jobs/{job_id}").json()
    stage = job["stages"][1]
    assert job["state"] == "failed" and "does not match the PyTorch model" in stage["error"]
    assert stage["results"]["check"]["max_box_diff_px"] > 1e-9  # what it measured is kept with the failure


def test_tta_is_reported_beside_the_plain_result_in_evaluate_and_mine(client, embedded, tiny_dataset):
    stages = [
        TRAIN,
        EVALUATE,
        {**EVALUATE, "augment": True},
        {"type": "mine", "split": "val", "imgsz": 64, "augment": True},
    ]
    job = client.get(f"/v1/jobs/{run(embedded, tiny_dataset, stages)}").json()
    assert job["state"] == "succeeded", [(s["type"], s["error"]) for s in job["stages"]]
    plain, augmented, mined = (job["stages"][i]["results"] for i in (1, 2, 3))
    assert "tta" not in plain
    tta = augmented["tta"]
    assert tta["method"].startswith("ultralytics augment=True")
    for metric in ("precision", "recall", "mAP50", "mAP50-95"):
        row = tta["overall"][metric]
        assert row["plain"] == plain["metrics"]["overall"][metric]  # the same as a separate plain evaluate stage
        assert row["tta"] == augmented["metrics"]["overall"][metric]  # the stage's own figures are the TTA ones
        assert row["delta"] == pytest.approx(row["tta"] - row["plain"], abs=1e-6)
    assert [r["name"] for r in tta["per_class"]] == [r["name"] for r in plain["metrics"]["per_class"]]
    kinds = mined["tta"]["kinds"]
    assert {kind: row["tta"] for kind, row in kinds.items()} == mined["kinds"]
    assert all(row["delta"] == row["tta"] - row["plain"] for row in kinds.values())
    assert mined["tta"]["hard_images"]["tta"] == mined["hard_images"]
