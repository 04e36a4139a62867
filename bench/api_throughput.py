"""GET /v1/jobs/{id} throughput and p99 latency at 50 concurrent clients, beside a bare FastAPI endpoint
serving the same document, both under the same uvicorn settings in one run (target >= 0.5 of bare).

    .venv/bin/python bench/api_throughput.py [--clients 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from common import dataset, free_port, new_home, percentile, start_stack

BENCH_DIR = Path(__file__).resolve().parent


async def load(url: str, clients: int, seconds: float) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - start)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, errors


def serve(app: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(command, env={**os.environ, **env}, cwd=BENCH_DIR)


def wait_up(url: str) -> None:
    for _ in range(200):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()

    home = new_home("throughput")
    dataset(home, train=8, val=4, size=64)
    stack = start_stack(home, {"STAGERUN_DEVICE": "cpu"})
    stack.processes.pop("api").terminate()  # served below under the same uvicorn settings as the bare app
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            pipeline = {
                "dataset": "bench",
                "stages": [{"type": "train", "epochs": 1, "imgsz": 64}, {"type": "evaluate", "imgsz": 64}],
            }
            for _ in range(20):
                try:
                    job = client.post("/v1/jobs", json=pipeline).json()
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
        ours_port, bare_port = free_port(), free_port()
        ours = serve("api.main:app", ours_port, {**stack.env})
        wait_up(f"http://127.0.0.1:{ours_port}/v1/jobs/{job['id']}")
        document = httpx.get(f"http://127.0.0.1:{ours_port}/v1/jobs/{job['id']}").json()
        bare = serve("bare_app:app", bare_port, {"BARE_DOCUMENT": json.dumps(document)})
        wait_up(f"http://127.0.0.1:{bare_port}/v1/jobs/x")
        results = {}
        for name, url in (
            ("bare FastAPI endpoint", f"http://127.0.0.1:{bare_port}/v1/jobs/{job['id']}"),
            ("stagerun GET /v1/jobs/{id}", f"http://127.0.0.1:{ours_port}/v1/jobs/{job['id']}"),
        ):
            asyncio.run(load(url, args.clients, 2))  # warm-up
            results[name] = asyncio.run(load(url, args.clients, args.seconds))
        for process in (ours, bare):
            process.terminate()
            process.wait()
    finally:
        stack.stop()
    print(f"{args.clients} concurrent clients, {args.seconds:.0f}s each, one uvicorn process each, same flags")
    for name, (rate, latencies, errors) in results.items():
        print(
            f"{name:<28} {rate:8.1f} req/s  p50 {percentile(latencies, 0.5) * 1000:6.1f} ms  "
            f"p99 {percentile(latencies, 0.99) * 1000:6.1f} ms  errors {errors}"
        )
    ours_rate = results["stagerun GET /v1/jobs/{id}"][0]
    bare_rate = results["bare FastAPI endpoint"][0]
    print(f"ratio stagerun / bare: {ours_rate / bare_rate:.3f}  (target >= 0.5)")


if __name__ == "__main__":
    main()
