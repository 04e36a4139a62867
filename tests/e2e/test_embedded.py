"""The embedded default end to end: SQLite database, SQLite broker, a real API and Celery worker."""

import pytest

from tests.e2e.checks import (
    check_metric_rows_match_results_csv,
    check_weights_download_and_plain_load,
    tiny_pipeline,
    train_only_pipeline,
)
from tests.e2e.stack import load_in_plain_ultralytics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(stack_factory):
    return stack_factory("embedded")


def test_failed_stage_fails_the_job_and_the_worker_lives_on(stack):
    broken = stack.home / "datasets" / "broken"
    for split in ("train", "val"):
        (broken / "images" / split).mkdir(parents=True)
    (broken / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a]\n")
    with stack.client() as client:
        refused = client.post("/v1/jobs", json={**tiny_pipeline(), "dataset": "broken"})  # empty splits: 422
        assert refused.status_code == 422 and refused.json()["error"]["details"][0]["code"] == "empty_split"
        # a model config that is valid YAML but names a module Ultralytics does not have fails at run time
        (stack.home / "weights").mkdir(exist_ok=True)
        (stack.home / "weights" / "broken.yaml").write_text(
            "nc: 3\nbackbone:\n  - [-1, 1, NoSuchModule, [16]]\nhead:\n  - [-1, 1, Detect, [nc]]\n"
        )
        job = client.post("/v1/jobs", json={**tiny_pipeline(), "model": "broken.yaml"}).json()
    job = stack.wait_done(job["id"], timeout_s=120)
    assert job["state"] == "failed"
    assert [s["state"] for s in job["stages"]] == ["failed", "skipped"]
    assert "nosuchmodule" in job["stages"][0]["error"].lower() and job["error"].startswith("stage 1 (train) failed")
    with stack.client() as client:  # the worker lives on
        assert client.post("/v1/jobs", json=train_only_pipeline(epochs=1)).status_code == 202


def check_evaluate_matches_plain_val(stack, job: dict, evaluate: dict) -> None:
    """The evaluate stage's figures are what plain ``YOLO(best).val()`` gives on the same split and settings."""
    from ultralytics import YOLO

    from worker.ultralytics_ext.metrics import detection_summary

    weights = stack.home / "artifacts" / evaluate["results"]["evaluated_weights"]
    data = stack.home / "datasets" / "tiny" / "data.yaml"
    plain = YOLO(str(weights)).val(data=str(data), split="val", imgsz=64, batch=4, device="cpu", plots=False,
                                   verbose=False, workers=0)
    expected = detection_summary(plain, ["square", "disc", "bar"])
    got = evaluate["results"]["metrics"]
    for key in ("precision", "recall", "mAP50", "mAP50-95"):
        assert got["overall"][key] == pytest.approx(expected["overall"][key], abs=1e-6), key
    for ours, theirs in zip(got["per_class"], expected["per_class"], strict=True):
        assert (ours["name"], ours["instances"]) == (theirs["name"], theirs["instances"])
        for key in ("precision", "recall", "mAP50", "mAP50-95"):
            if theirs[key] is None:
                assert ours[key] is None, (ours, key)
            else:
                assert ours[key] == pytest.approx(theirs[key], abs=1e-6), (ours["name"], key)


def test_train_train_evaluate_chain(stack, tmp_path):
    pipeline = tiny_pipeline()
    pipeline["stages"].insert(1, {"type": "train", "epochs": 1, "imgsz": 64, "batch": 4, "workers": 0})
    with stack.client() as client:
        submitted = client.post("/v1/jobs", json=pipeline)
    assert submitted.status_code == 202, submitted.text
    job = stack.wait_done(submitted.json()["id"])
    assert job["state"] == "succeeded", job
    first, second, evaluate = job["stages"]
    assert [s["state"] for s in job["stages"]] == ["succeeded"] * 3
    assert (first["epoch"], first["epochs"], second["epoch"]) == (2, 2, 1)
    assert first["results"]["start_weights"] == "yolov8n.yaml"
    assert second["results"]["start_weights"] == f"{first['dir']}/weights/best.pt"  # no server path
    assert evaluate["results"]["evaluated_weights"] == f"{second['dir']}/weights/best.pt"
    assert job["best_weights"] == second["results"]["weights"]
    per_class = evaluate["results"]["metrics"]["per_class"]
    assert [c["name"] for c in per_class] == ["square", "disc", "bar"]
    assert sum(c["instances"] for c in per_class) > 0
    check_evaluate_matches_plain_val(stack, job, evaluate)
    localization = evaluate["results"]["localization"]  # served by the API with the stage
    assert [row["name"] for row in localization["per_class"]] == ["square", "disc", "bar"]
    assert {"found", "iou_0.5", "iou_0.75", "median_width_error_px"} <= set(localization["per_class"][0])

    rows = check_metric_rows_match_results_csv(stack, job, 0)
    assert [r["epoch"] for r in rows] == [1, 2] and "metrics/mAP50(B)" in rows[0]["values"]
    assert first["latest_metrics"] == rows[-1]["values"]

    with stack.client() as client:
        listing = client.get(f"/v1/jobs/{job['id']}/artifacts").json()
    paths = {item["path"] for item in listing["items"]}
    for expected in (
        "summary.json",
        "01-train/weights/best.pt",
        "01-train/weights/last.pt",
        "01-train/results.csv",
        "02-train/weights/best.pt",
        "03-evaluate/metrics.json",
        "01-train/stage.log",
    ):
        assert expected in paths
    assert any(p.startswith("01-train/tensorboard/events.out.tfevents") for p in paths)
    check_weights_download_and_plain_load(stack, job, tmp_path)


def test_cancel_stops_within_one_epoch(stack):
    with stack.client() as client:
        job = client.post("/v1/jobs", json=tiny_pipeline(epochs=200)).json()
    stack.wait_for(job["id"], lambda j: j["stages"][0]["epoch"] >= 1, timeout_s=180, interval_s=0.2)
    with stack.client() as client:
        response = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    with stack.client() as client:  # read after the cancel is stored: the response's own epoch may be one behind
        epoch_at_cancel = client.get(f"/v1/jobs/{job['id']}").json()["stages"][0]["epoch"]
    job = stack.wait_done(job["id"], timeout_s=120)
    train, evaluate = job["stages"]
    assert job["state"] == "cancelled" and train["state"] == "cancelled" and evaluate["state"] == "cancelled"
    assert epoch_at_cancel <= train["epoch"] <= epoch_at_cancel + 1 < 200
    assert (stack.home / "artifacts" / train["dir"] / "weights" / "last.pt").exists()  # artifacts kept
    with stack.client() as client:
        rows = client.get(f"/v1/jobs/{job['id']}/metrics").json()["rows"]
    assert len(rows) == train["epoch"]


def test_cli_submit_watch_status_download(stack, tmp_path):
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        "dataset: tiny\nstages:\n  - {type: train, epochs: 1, imgsz: 64, batch: 4, workers: 0, thin_assigner: {}}\n"
    )
    submitted = stack.stagerun("submit", str(pipeline), "--watch", timeout=300)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = submitted.stdout.splitlines()[0].strip()
    assert len(job_id) == 32 and "succeeded" in submitted.stdout
    assert "stage 1/1 train" in submitted.stderr  # progress, one line per change when not on a terminal

    status = stack.stagerun("status", job_id)
    assert status.returncode == 0 and f"job {job_id}" in status.stdout and "01 train" in status.stdout
    with stack.client() as client:
        info = client.get(f"/v1/jobs/{job_id}").json()["stages"][0]["info"]
    assert info["thin_assigner"] == {"iou": "iou", "target_floor": 0.1, "floor_on": "starved"}
    measured = info["starvation"]["first_epoch"]
    assert measured["epoch"] == 1 and measured["batches"] == 2 and measured["classes"]  # the loss is built before batch 1
    assert "starvation report" in status.stdout
    for name, shares in measured["classes"].items():
        assert any(line.split()[:2] == [name, str(shares["boxes"])] for line in status.stdout.splitlines())

    weights = tmp_path / "out" / "best.pt"
    downloaded = stack.stagerun("download", job_id, "-o", str(weights))
    assert downloaded.returncode == 0, downloaded.stderr
    assert weights.read_bytes()[:4] == b"PK\x03\x04"
    image = next((stack.home / "datasets" / "tiny" / "images" / "val").glob("*.png"))
    assert "names ['bar', 'disc', 'square']" in load_in_plain_ultralytics(weights, image, tmp_path / "plain")
    csv_file = tmp_path / "results.csv"
    artifact = stack.stagerun("download", job_id, "--artifact", "01-train/results.csv", "-o", str(csv_file))
    assert artifact.returncode == 0 and csv_file.read_text().startswith("epoch,time,")

    missing = stack.stagerun("status", "f" * 32)
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr
    refused = stack.stagerun("download", job_id, "--artifact", "../../../etc/passwd", "-o", str(tmp_path / "x"))
    assert refused.returncode == 1 and not (tmp_path / "x").exists()


def test_the_event_stream_of_a_running_job(stack):
    import json

    with stack.client() as client:
        job = client.post("/v1/jobs", json=train_only_pipeline(epochs=3)).json()
        events: list[tuple[int, str, dict]] = []
        with client.stream("GET", f"/v1/jobs/{job['id']}/events", params={"interval": 0.2}, timeout=400) as stream:
            event_id, kind = None, None
            for line in stream.iter_lines():
                if line.startswith("id: "):
                    event_id = int(line.removeprefix("id: "))
                elif line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((event_id, kind, json.loads(line.removeprefix("data: "))))
    kinds = [kind for _, kind, _ in events]
    assert kinds[0] == "job" and kinds[-1] == "end" and set(kinds[1:-1]) <= {"state", "stage", "epoch"}
    assert events[0][2]["id"] == job["id"]
    ids = [event_id for event_id, _, _ in events[1:-1]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # every logged event once, in order
    assert [data["epoch"] for _, kind, data in events if kind == "epoch"] == [1, 2, 3]  # every epoch, as it ends
    assert [data["state"] for _, kind, data in events if kind == "state"][-1] == "succeeded"
    assert ("stage", "succeeded") in [(kind, data.get("state")) for _, kind, data in events]
