"""Submit-to-running latency: from POST /v1/jobs to the stage being claimed by a worker, on the embedded
default (SQLite + SQLite broker) and on PostgreSQL + Redis, in one run (target <= 1.5 s).

Latency is measured by the server's own clocks (job.created_at to stage.started_at) and by the client
(POST sent to a poll that sees 'running'). Each job is cancelled once running so the next starts idle.

    .venv/bin/python bench/submit_latency.py [--jobs 15]
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import datetime

import psycopg
from common import dataset, describe, new_home, start_stack, wait_job

PIPELINE = {"dataset": "bench", "stages": [{"type": "train", "epochs": 50, "imgsz": 64, "batch": 4, "workers": 0}]}


def measure(stack, jobs: int) -> tuple[list[float], list[float]]:
    server, client_side = [], []
    with stack.client() as client:
        for _ in range(jobs):
            sent = time.perf_counter()
            job = client.post("/v1/jobs", json=PIPELINE).json()
            running = wait_job(client, job["id"], lambda j: j["stages"][0]["state"] == "running", poll_s=0.02)
            client_side.append(time.perf_counter() - sent)
            created = datetime.fromisoformat(running["created_at"])
            started = datetime.fromisoformat(running["stages"][0]["started_at"])
            server.append((started.replace(tzinfo=created.tzinfo) - created).total_seconds())
            client.post(f"/v1/jobs/{job['id']}/cancel")
            wait_job(client, job["id"])
    return server, client_side


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=15)
    args = parser.parse_args()
    results = {}

    home = new_home("latency-embedded")
    dataset(home, train=8, val=4, size=64)
    stack = start_stack(home, {"STAGERUN_DEVICE": "cpu"})
    try:
        results["embedded (SQLite db + SQLite broker)"] = measure(stack, args.jobs)
    finally:
        stack.stop()

    name = f"stagerun_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    home = new_home("latency-redis")
    dataset(home, train=8, val=4, size=64)
    stack = start_stack(
        home,
        {
            "STAGERUN_DEVICE": "cpu",
            "STAGERUN_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1/{name}",
            "STAGERUN_BROKER_URL": "redis://127.0.0.1:6379/0",
            "STAGERUN_QUEUE": f"bench-{name}",
        },
    )
    try:
        results["production (PostgreSQL + Redis)"] = measure(stack, args.jobs)
    finally:
        stack.stop()
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

    for backend, (server, client_side) in results.items():
        print(f"{backend}")
        print(f"  server clock (created -> claimed):   {describe(server)}")
        print(f"  client clock (POST -> sees running): {describe(client_side)}")
    print("target: <= 1.5 s")


if __name__ == "__main__":
    main()
