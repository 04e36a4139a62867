"""The dataset gate of POST /v1/jobs on omr-bench (1800 tiles): the cold validation (every image decoded
header-first and verified, every label parsed) and what a re-submit naming the unchanged folder adds (the
fingerprint: a stat of every image and label file), both inside a real in-process API.

    python bench/dataset_gate.py [--repeats 20]

omr-bench is copied into a temporary datasets root (links out of a dataset folder are refused)."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omr import OMR_BENCH  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="stagerun-bench-gate-"))
    os.environ["STAGERUN_HOME"] = str(home / "var")
    from fastapi.testclient import TestClient

    from api.main import create_app
    from shared import migrate
    from shared.auth import create_token
    from shared.datasets import check
    from shared.db import session_scope
    from shared.references import resolve_dataset
    from shared.settings import get_settings

    migrate.upgrade()
    settings = get_settings()
    settings.ensure_dirs()
    shutil.copytree(OMR_BENCH, settings.datasets_root / "omr", ignore=shutil.ignore_patterns("*.cache"))
    files = sum(1 for p in (settings.datasets_root / "omr").rglob("*") if p.is_file())
    with session_scope() as session:
        _, token = create_token(session, "bench", is_admin=True)
        session.commit()
    pipeline = {"dataset": "omr", "model": "yolov8n.yaml", "stages": [{"type": "train", "epochs": 1, "imgsz": 320}]}

    ref = resolve_dataset(settings, "omr")
    started = time.perf_counter()
    check.check_dataset(ref, "omr", settings.dataset_max_images)
    cold = time.perf_counter() - started
    warm = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        check.check_dataset(ref, "omr", settings.dataset_max_images)
        warm.append(time.perf_counter() - started)

    posts = []
    with TestClient(create_app(), headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(args.repeats):
            started = time.perf_counter()
            response = client.post("/v1/jobs", json=pipeline)
            posts.append(time.perf_counter() - started)
            assert response.status_code == 202, response.text
    print(f"omr-bench: {files} files ({sum(len(v) for v in ref.splits.values())} split paths)")
    print(f"cold validation: {cold:.2f} s, {files / cold:.0f} files/s")
    print(f"re-submit, unchanged folder: gate median {statistics.median(warm) * 1000:.1f} ms "
          f"(max {max(warm) * 1000:.1f} ms) of POST /v1/jobs median {statistics.median(posts) * 1000:.1f} ms, "
          f"{args.repeats} repeats")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
