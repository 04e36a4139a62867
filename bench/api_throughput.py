"""GET /v1/jobs/{id} throughput and p99 latency at 50 concurrent clients, beside a bare FastAPI endpoint
serving the same document, both under the same uvicorn settings in one run (target >= 0.5 of bare).

The load comes from wrk (Debian package ``wrk``: a C load generator; a Python client saturates before a
bare FastAPI endpoint does). Without wrk the script falls back to an httpx client and says so.

    .venv/bin/python bench/api_throughput.py [--clients 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from common import dataset, free_port, new_home, percentile, start_stack, wait_job

BENCH_DIR = Path(__file__).resolve().parent


async def load(url: str, clients: int, seconds: float, headers: dict) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:

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


def wrk_load(url: str, clients: int, seconds: float, headers: dict) -> tuple[float, dict[str, float], int]:
    """(requests/s, latency percentiles in ms, non-2xx count) from wrk with --latency."""
    command = ["wrk", "-t2", f"-c{clients}", f"-d{int(seconds)}s", "--latency", url]
    for name, value in headers.items():
        command[1:1] = ["-H", f"{name}: {value}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    percentiles = {}
    for share, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE):
        percentiles[share] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return rate, percentiles, int(errors.group(1)) if errors else 0


def measure(url: str, clients: int, seconds: float, headers: dict) -> tuple[float, dict[str, float], int]:
    """Every server gets the same Authorization header (the bare app ignores it)."""
    if shutil.which("wrk"):
        wrk_load(url, clients, 2, headers)  # warm-up
        return wrk_load(url, clients, seconds, headers)
    print("wrk not found (apt-get install wrk): using the slower httpx client", flush=True)
    asyncio.run(load(url, clients, 2, headers))
    rate, latencies, errors = asyncio.run(load(url, clients, seconds, headers))
    return rate, {"50": percentile(latencies, 0.5) * 1000, "99": percentile(latencies, 0.99) * 1000}, errors


def serve(app: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(command, env={**os.environ, **env}, cwd=BENCH_DIR)


def wait_up(url: str, headers: dict) -> None:
    for _ in range(200):
        try:
            if httpx.get(url, timeout=1, headers=headers).status_code == 200:
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
    servers: list[subprocess.Popen] = []
    try:
        pipeline = {
            "dataset": "bench",
            "stages": [{"type": "train", "epochs": 1, "imgsz": 64}, {"type": "evaluate", "imgsz": 64}],
        }
        with stack.client() as client:
            job = wait_job(client, client.post("/v1/jobs", json=pipeline).json()["id"], poll_s=0.5)
        stack.stop()  # nothing else may use the CPU; our API is served again below like the bare app
        ports = {"bare": free_port(), "uncached": free_port(), "cached": free_port()}
        servers.append(serve("api.main:app", ports["uncached"], {**stack.env, "STAGERUN_API_JOB_CACHE_TTL_S": "0"}))
        servers.append(serve("api.main:app", ports["cached"], stack.env))
        for name in ("uncached", "cached"):
            wait_up(f"http://127.0.0.1:{ports[name]}/v1/jobs/{job['id']}", stack.auth_headers())
        document = httpx.get(
            f"http://127.0.0.1:{ports['cached']}/v1/jobs/{job['id']}", headers=stack.auth_headers()
        ).json()
        servers.append(serve("bare_app:app", ports["bare"], {"BARE_DOCUMENT": json.dumps(document)}))
        wait_up(f"http://127.0.0.1:{ports['bare']}/v1/jobs/x", stack.auth_headers())
        results = {}
        for name, port in (
            ("bare FastAPI endpoint", ports["bare"]),
            ("stagerun, cache off", ports["uncached"]),
            ("stagerun, 0.25 s cache", ports["cached"]),
        ):
            results[name] = measure(
                f"http://127.0.0.1:{port}/v1/jobs/{job['id']}", args.clients, args.seconds, stack.auth_headers()
            )
    finally:
        for process in servers:
            process.terminate()
            process.wait()
        stack.stop()
    print(f"{args.clients} concurrent clients, {args.seconds:.0f}s each, one uvicorn process each, same flags")
    for name, (rate, latency_ms, errors) in results.items():
        print(
            f"{name:<28} {rate:8.1f} req/s  p50 {latency_ms['50']:6.1f} ms  p99 {latency_ms['99']:6.1f} ms  errors {errors}"
        )
    bare_rate = results["bare FastAPI endpoint"][0]
    for name in ("stagerun, cache off", "stagerun, 0.25 s cache"):
        print(f"ratio {name} / bare: {results[name][0] / bare_rate:.3f}  (target >= 0.5)")


if __name__ == "__main__":
    main()
