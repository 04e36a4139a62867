"""What the benchmarks share: a temporary stagerun stack and a synthetic dataset."""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client.stack import Stack  # noqa: E402
from client.synthetic import make_dataset  # noqa: E402

TERMINAL = {"succeeded", "failed", "cancelled", "gated"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_home(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"stagerun-bench-{prefix}-"))


def start_stack(home: Path, extra_env: dict[str, str] | None = None) -> Stack:
    env = {"STAGERUN_HOME": str(home / "var"), "STAGERUN_API_PORT": str(free_port()), **(extra_env or {})}
    stack = Stack(log_dir=home / "logs", env=env)
    stack.start()
    stack.wait_ready()
    return stack


def dataset(home: Path, name: str = "bench", **kwargs) -> Path:
    return make_dataset(home / "var" / "datasets" / name, **kwargs)


def wait_job(client: httpx.Client, job_id: str, predicate=lambda job: job["state"] in TERMINAL, poll_s: float = 0.05):
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(poll_s)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def describe(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.3f}s  p95 {percentile(values, 0.95):.3f}s  "
        f"max {max(values):.3f}s  (n={len(values)})"
    )
