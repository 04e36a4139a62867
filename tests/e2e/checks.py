"""Assertions about a finished train+evaluate job, shared by the embedded and production e2e tests."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.e2e.stack import Stack, load_in_plain_ultralytics


def tiny_pipeline(**train) -> dict:
    return {
        "name": "e2e",
        "dataset": "tiny",
        "model": "yolov8n.yaml",
        "stages": [
            {"type": "train", "epochs": 2, "imgsz": 64, "batch": 4, "workers": 0, "seed": 0, **train},
            {"type": "evaluate", "imgsz": 64, "batch": 4},
        ],
    }


def train_only_pipeline(**train) -> dict:
    """``tiny_pipeline`` with its train stage alone."""
    pipeline = tiny_pipeline(**train)
    return {**pipeline, "stages": pipeline["stages"][:1]}


def check_metric_rows_match_results_csv(stack: Stack, job: dict, stage_index: int) -> list[dict]:
    with stack.client() as client:
        rows = client.get(f"/v1/jobs/{job['id']}/metrics", params={"stage": stage_index}).json()["rows"]
    stage_dir = stack.home / "artifacts" / job["stages"][stage_index]["dir"]
    with (stage_dir / "results.csv").open() as handle:
        csv_rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == [int(float(r["epoch"])) for r in csv_rows]
    for row, csv_row in zip(rows, csv_rows, strict=True):
        assert set(row["values"]) == set(csv_row), "the database row has the columns of results.csv"
        for key, text in csv_row.items():
            if key != "time":
                assert abs(row["values"][key] - float(text)) <= 1e-5 * max(1.0, abs(float(text))), key
    return rows


def check_weights_download_and_plain_load(stack: Stack, job: dict, workdir: Path) -> None:
    with stack.client() as client:
        weights = client.get(f"/v1/jobs/{job['id']}/weights")
        assert weights.status_code == 200 and len(weights.content) > 100_000
        head = client.get(f"/v1/jobs/{job['id']}/weights", headers={"Range": "bytes=0-3"})
        assert head.status_code == 206 and head.content == weights.content[:4] == b"PK\x03\x04"
    best = workdir / "best.pt"
    best.parent.mkdir(parents=True, exist_ok=True)
    best.write_bytes(weights.content)
    image = next((stack.home / "datasets" / "tiny" / "images" / "val").glob("*.png"))
    output = load_in_plain_ultralytics(best, image, workdir / "plain")
    assert "names ['bar', 'disc', 'square']" in output
