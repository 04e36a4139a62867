"""Trials per hour of a search stage with 1 worker and with 2 workers, side by side in one run: the same search
(same seed, same trials, ``parallel`` 2, no pruning) on the same synthetic dataset, through a real API and real
Celery workers (the embedded default: SQLite database and broker; ``--production`` for PostgreSQL and Redis).

Also measured: the fan-out latency, from a trial's job ending to the next trial's train stage being claimed
(the search stage's step: its own stage process), which bounds how far a search scales with more workers.

    .venv/bin/python bench/search_scaling.py --trials 4 --epochs 2
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import datetime

from common import TERMINAL, dataset, free_port, new_home

from client.stack import Stack, python_module


def search_pipeline(trials: int, epochs: int, imgsz: int) -> dict:
    return {
        "name": "scaling",
        "dataset": "bench",
        "model": "yolov8n.yaml",
        "stages": [{
            "type": "search", "trials": trials, "parallel": 2, "seed": 0, "pruner": "none", "metric": "mAP50",
            "imgsz": imgsz,
            "train": {"epochs": epochs, "imgsz": imgsz, "batch": 8, "workers": 0, "seed": 0, "plots": False},
            "space": {"box": {"low": 2.0, "high": 9.0}, "cls_gain": {"low": 0.2, "high": 1.5}},
        }],
    }


def moment(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def run(workers: int, args, extra_env: dict[str, str]) -> dict:
    home = new_home(f"search{workers}")
    env = {"STAGERUN_HOME": str(home / "var"), "STAGERUN_API_PORT": str(free_port()), **extra_env}
    stack = Stack(log_dir=home / "logs", env=env)
    dataset(home, train=args.images, val=max(4, args.images // 4), size=args.imgsz, seed=0)
    stack.start()
    for extra in range(1, workers):
        stack.start_process(f"worker{extra + 1}", python_module("client.cli", "worker"))
    try:
        stack.wait_ready()
        with stack.client() as client:
            started = time.monotonic()
            job_id = client.post("/v1/jobs", json=search_pipeline(args.trials, args.epochs, args.imgsz)).json()["id"]
            while (job := client.get(f"/v1/jobs/{job_id}").json())["state"] not in TERMINAL:
                time.sleep(0.5)
            wall = time.monotonic() - started
            trials = client.get("/v1/jobs", params={"parent": job_id, "limit": 200}).json()["items"]
        if job["state"] != "succeeded":
            raise RuntimeError(f"search ended {job['state']}: {job['error']}")
        shown = stack.stagerun("search", job_id, timeout=120)
        print(shown.stdout.rstrip() or shown.stderr.rstrip(), flush=True)
        ends = sorted(moment(t["finished_at"]) for t in trials)
        starts = sorted(moment(t["stages"][0]["started_at"]) for t in trials)
        latency = [min(s - e for s in starts if s >= e) for e in ends[:-2] if any(s >= e for s in starts)]
        durations = [moment(t["finished_at"]) - moment(t["stages"][0]["started_at"]) for t in trials]
        return {
            "workers": workers, "wall_s": wall, "trials": len(trials), "trials_per_hour": len(trials) / wall * 3600,
            "trial_s": statistics.median(durations), "fanout_latency_s": statistics.median(latency) if latency else None,
        }
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=96)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--production", action="store_true", help="PostgreSQL (database test) and Redis on localhost")
    args = parser.parse_args()
    results = []
    for workers in (1, 2):
        env = {}
        if args.production:
            env = {"STAGERUN_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
                   "STAGERUN_BROKER_URL": "redis://127.0.0.1:6379/0", "STAGERUN_QUEUE": f"bench-{uuid.uuid4().hex[:8]}"}
        results.append(run(workers, args, env))
        r = results[-1]
        latency = "-" if r["fanout_latency_s"] is None else f"{r['fanout_latency_s']:.1f}"
        print(f"workers {r['workers']}: {r['trials']} trials in {r['wall_s']:.1f} s = {r['trials_per_hour']:.1f} "
              f"trials/hour; median trial {r['trial_s']:.1f} s; fan-out latency {latency} s", flush=True)
    print(f"ratio 2 workers / 1 worker (trials per hour): {results[1]['trials_per_hour'] / results[0]['trials_per_hour']:.2f}")


if __name__ == "__main__":
    main()
