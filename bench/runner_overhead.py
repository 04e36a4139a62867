"""Runner overhead: the same 3-epoch training through API + worker vs plain ``YOLO(...).train(...)``
in a fresh process, alternated in one run. Prints the wall-time ratio (target <= 1.05).

    .venv/bin/python bench/runner_overhead.py [--repeats 3] [--images 48] [--imgsz 160] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

from common import dataset, new_home, start_stack, wait_job

PLAIN = """
import sys
from ultralytics import YOLO
YOLO("yolov8n.yaml").train(data=sys.argv[1], project=sys.argv[2], name="plain", exist_ok=True, device="cpu",
                           epochs={epochs}, imgsz={imgsz}, batch=8, workers=0, seed=0)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    home = new_home("overhead")
    data_yaml = dataset(home, train=args.images, val=args.images // 4, size=args.imgsz, seed=0)
    stack = start_stack(home, {"STAGERUN_DEVICE": "cpu"})
    train = {"type": "train", "epochs": args.epochs, "imgsz": args.imgsz, "batch": 8, "workers": 0, "seed": 0}
    plain_code = PLAIN.format(epochs=args.epochs, imgsz=args.imgsz)
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(home / "yolo")}
    plain_times, runner_times = [], []
    try:
        with stack.client() as client:
            for repeat in range(args.repeats):
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-c", plain_code, str(data_yaml), str(home / "plain")],
                    env=env,
                    check=True,
                    capture_output=True,
                )
                plain_times.append(time.perf_counter() - start)

                sent = datetime.now(UTC)
                job = client.post("/v1/jobs", json={"dataset": "bench", "stages": [train]}).json()
                job = wait_job(client, job["id"], poll_s=1.0)  # a slow poll: the box has 2 cores and trains
                finished = datetime.fromisoformat(job["finished_at"]).replace(tzinfo=UTC)
                runner_times.append((finished - sent).total_seconds())
                assert job["state"] == "succeeded", job
                print(
                    f"repeat {repeat + 1}: plain {plain_times[-1]:.2f}s  stagerun {runner_times[-1]:.2f}s", flush=True
                )
    finally:
        stack.stop()
    plain, runner = statistics.median(plain_times), statistics.median(runner_times)
    print(f"\n{args.epochs} epochs, {args.images} images at {args.imgsz}px, yolov8n.yaml, CPU, {args.repeats} repeats")
    print(f"plain Ultralytics (fresh process)  median {plain:.2f}s")
    print(f"stagerun (POST sent -> finished_at) median {runner:.2f}s")
    print(f"ratio stagerun / plain: {runner / plain:.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()
