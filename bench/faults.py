"""Faults injected into a running embedded stack (SQLite database and broker, a real API and worker):
the worker's whole process group SIGKILLed mid-epoch and restarted, duplicate deliveries of a running
stage, and API restarts. Prints one table row per fault: times injected, jobs lost, epochs repeated,
time to recovery.

    .venv/bin/python bench/faults.py --kills 3 --duplicates 5 --api-restarts 2
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import time

from common import TERMINAL, dataset, free_port, new_home

from client.stack import Stack, python_module
from shared.queue import RUN_STAGE_TASK, make_celery
from shared.settings import Settings

LEASE_TTL_S = 10


def pipeline(epochs: int) -> dict:
    return {
        "dataset": "bench",
        "model": "yolov8n.yaml",
        "stages": [{"type": "train", "epochs": epochs, "imgsz": 64, "batch": 4, "workers": 0, "seed": 0}],
    }


class FaultyStack(Stack):
    """The worker leads its own process group, so the whole group can be SIGKILLed at once."""

    def start_worker(self) -> None:
        with (self.log_dir / "worker.log").open("ab") as output:
            self.processes["worker"] = subprocess.Popen(
                python_module("client.cli", "worker"),
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def job(self, job_id: str) -> dict:
        with self.client() as client:
            return client.get(f"/v1/jobs/{job_id}").json()

    def epochs_done(self, job_id: str) -> list[int]:
        with self.client() as client:
            return [r["epoch"] for r in client.get(f"/v1/jobs/{job_id}/metrics").json()["rows"]]

    def submit(self, epochs: int) -> str:
        with self.client() as client:
            return client.post("/v1/jobs", json=pipeline(epochs)).json()["id"]

    def wait(self, job_id: str, predicate, timeout_s: float = 600) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if predicate(job):
                return job
            time.sleep(0.2)
        raise RuntimeError(f"job {job_id} stuck: {job['state']} {job['progress']}")


def kills(stack: FaultyStack, count: int) -> dict:
    job_id = stack.submit(epochs=2 * count + 2)
    repeated, recovery = [], []
    for kill in range(count):
        stack.wait(job_id, lambda j, k=kill: len(stack.epochs_done(j["id"])) >= 2 * k + 1)
        time.sleep(0.5)  # into the next epoch
        done = len(stack.epochs_done(job_id))
        os.killpg(stack.processes["worker"].pid, signal.SIGKILL)
        stack.processes["worker"].wait()
        killed_at = time.monotonic()
        stack.start_worker()
        job = stack.wait(job_id, lambda j, k=kill: j["stages"][0]["attempt"] == k + 2 and j["state"] == "running")
        recovery.append(time.monotonic() - killed_at)
        job = stack.wait(job_id, lambda j, k=kill: len((j["stages"][0]["info"] or {}).get("resumed", [])) == k + 1)
        from_epoch = job["stages"][0]["info"]["resumed"][-1]["from_epoch"]
        repeated.append(done + 2 - from_epoch)  # the epoch in progress at the kill, if it restarts
        print(f"kill {kill + 1}: {done} epochs done, resumed at epoch {from_epoch}, recovered in {recovery[-1]:.1f}s")
    job = stack.wait(job_id, lambda j: j["state"] in TERMINAL)
    rows = stack.epochs_done(job_id)
    lost = int(job["state"] != "succeeded" or rows != list(range(1, 2 * count + 3)))
    return {"jobs lost": lost, "epochs repeated": repeated, "recovery_s": recovery}


def duplicates(stack: FaultyStack, count: int, home) -> dict:
    job_id = stack.submit(epochs=2)
    stack.wait(job_id, lambda j: j["state"] == "running")
    settings = Settings(home=home / "var")
    import sqlite3

    with sqlite3.connect(home / "var" / "stagerun.db") as connection:
        stage_id = connection.execute("SELECT id FROM stages WHERE job_id = ?", (job_id,)).fetchone()[0]
    sender = make_celery(settings)
    for _ in range(count):
        sender.send_task(RUN_STAGE_TASK, args=[stage_id], queue=settings.queue)
    job = stack.wait(job_id, lambda j: j["state"] in TERMINAL)
    log = (home / "var" / "artifacts" / job["stages"][0]["dir"] / "stage.log").read_text()
    executions = log.count(f"stage {stage_id} (train) of job {job_id} starting")
    lost = int(job["state"] != "succeeded" or stack.epochs_done(job_id) != [1, 2])
    return {"jobs lost": lost, "executions": executions}


def api_restarts(stack: FaultyStack, count: int) -> dict:
    job_id = stack.submit(epochs=count + 1)
    recovery = []
    for _ in range(count):
        stack.wait(job_id, lambda j: j["state"] == "running")
        stack.processes["api"].send_signal(signal.SIGTERM)
        stack.processes["api"].wait()
        down_at = time.monotonic()
        stack.start_process("api", python_module("client.cli", "api"))
        stack.wait_ready()
        recovery.append(time.monotonic() - down_at)
    job = stack.wait(job_id, lambda j: j["state"] in TERMINAL)
    lost = int(job["state"] != "succeeded" or stack.epochs_done(job_id) != list(range(1, count + 2)))
    return {"jobs lost": lost, "recovery_s": recovery}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--duplicates", type=int, default=5)
    parser.add_argument("--api-restarts", type=int, default=2)
    args = parser.parse_args()
    home = new_home("faults")
    dataset(home, train=8, val=4, size=64, seed=0)
    env = {
        "STAGERUN_HOME": str(home / "var"),
        "STAGERUN_API_PORT": str(free_port()),
        "STAGERUN_HEARTBEAT_INTERVAL_S": "1",
        "STAGERUN_LEASE_TTL_S": str(LEASE_TTL_S),
        "STAGERUN_REAPER_INTERVAL_S": "1",
        "STAGERUN_MAX_STAGE_ATTEMPTS": str(args.kills + 1),
    }
    stack = FaultyStack(log_dir=home / "logs", env=env)
    stack.start()
    try:
        stack.wait_ready()
        results = [
            ("worker SIGKILL (process group), restarted", args.kills, kills(stack, args.kills)),
            ("duplicate delivery of a running stage", args.duplicates, duplicates(stack, args.duplicates, home)),
            ("API restarted while a job runs", args.api_restarts, api_restarts(stack, args.api_restarts)),
        ]
    finally:
        stack.stop()
    print(f"\n| fault | times | jobs lost | epochs repeated | time to recovery | (lease {LEASE_TTL_S}s, heartbeat 1s)")
    print("|---|---|---|---|---|")
    for name, times, result in results:
        repeated = result.get("epochs repeated")
        repeated_text = f"max {max(repeated)} per kill ({sum(repeated)} total)" if repeated else "-"
        if "executions" in result:
            repeated_text = f"executions: {result['executions']}"
        recovery = result.get("recovery_s")
        recovery_text = f"median {statistics.median(recovery):.1f}s, max {max(recovery):.1f}s" if recovery else "-"
        print(f"| {name} | {times} | {result['jobs lost']} | {repeated_text} | {recovery_text} |")


if __name__ == "__main__":
    main()
