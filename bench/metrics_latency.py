"""Latency of GET /metrics on the embedded default (SQLite) with a database of 300 jobs (target: median under
20 ms). The jobs are written straight to the database in a realistic mix of states, two stages each, with a
metric row per epoch (20 epochs per train stage that ran); then /metrics is scraped 200 times after a short
warm-up, through the in-process TestClient or a real uvicorn server on a local port. /healthz is measured the
same way, as the baseline cost of the HTTP stack on the machine at hand.

    .venv/bin/python bench/metrics_latency.py [--jobs 300] [--requests 200] [--uvicorn]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

JOB_STATES = ["queued"] * 3 + ["running"] * 2 + ["succeeded"] * 10 + ["failed", "cancelled", "gated"]


def populate(jobs: int, epochs: int, seed: int = 0) -> None:
    from shared.db import session_scope
    from shared.models import Job, MetricRow, Stage, utcnow

    rng = random.Random(seed)
    now = utcnow()
    with session_scope() as session:
        for n in range(jobs):
            state = rng.choice(JOB_STATES)
            created = now - timedelta(minutes=rng.uniform(0, 7 * 24 * 60))
            train_s, evaluate_s = rng.uniform(60, 4 * 3600), rng.uniform(5, 120)
            train_end = created + timedelta(seconds=train_s)
            train = {"queued": "queued", "running": "running", "cancelled": "cancelled"}.get(state, "succeeded")
            evaluate = {"succeeded": "succeeded", "failed": "failed", "gated": "skipped", "cancelled": "cancelled"}
            job = Job(id=uuid.uuid4().hex, name=f"bench-{n}", tags=["bench"], state=state, dataset="bench",
                      model="yolov8n.yaml", spec={}, owner=f"owner-{n % 5}", created_at=created)
            job.stages = [
                Stage(index=0, type="train", state=train, spec={}, dir="01-train", epochs=epochs,
                      attempt=0 if train == "queued" else 1,
                      started_at=None if train == "queued" else created,
                      finished_at=train_end if train in ("succeeded", "cancelled") else None),
                Stage(index=1, type="evaluate", state=evaluate.get(state, "pending"), spec={}, dir="02-evaluate",
                      attempt=1 if state in ("succeeded", "failed") else 0,
                      started_at=train_end if state in ("succeeded", "failed") else None,
                      finished_at=train_end + timedelta(seconds=evaluate_s)
                      if state in ("succeeded", "failed", "gated", "cancelled") else None),
            ]
            session.add(job)
            session.flush()
            if train != "queued":
                ran = epochs if train == "succeeded" else rng.randrange(1, epochs)
                recent = state == "running"  # the running jobs' epochs land in the 5-minute window
                session.add_all(
                    MetricRow(stage_id=job.stages[0].id, epoch=e, values={"metrics/mAP50(B)": 0.5},
                              created_at=now - timedelta(seconds=10 * (ran - e)) if recent else created)
                    for e in range(ran)
                )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def measure(get, requests: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        assert get().status_code == 200
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = get()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--uvicorn", action="store_true", help="scrape a real uvicorn server instead of TestClient")
    args = parser.parse_args()

    for key in [k for k in os.environ if k.startswith("STAGERUN_")]:
        del os.environ[key]
    os.environ["STAGERUN_HOME"] = str(Path(tempfile.mkdtemp(prefix="stagerun-bench-metrics-")) / "var")
    from shared import migrate
    from shared.settings import get_settings

    get_settings().ensure_dirs()
    migrate.upgrade()
    populate(args.jobs, args.epochs)

    from api.main import create_app

    app = create_app()
    if args.uvicorn:
        import httpx
        import uvicorn
        from common import free_port

        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            times = measure(lambda: client.get("/metrics"), args.requests)
            baseline = measure(lambda: client.get("/healthz"), args.requests)
            body = client.get("/metrics").text
        server.should_exit = True
        thread.join()
        how = "uvicorn + httpx over loopback"
    else:
        from fastapi.testclient import TestClient

        with TestClient(app) as client:
            times = measure(lambda: client.get("/metrics"), args.requests)
            baseline = measure(lambda: client.get("/healthz"), args.requests)
            body = client.get("/metrics").text
        how = "in-process TestClient"
    series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
    print(f"GET /metrics, {args.jobs} jobs ({2 * args.jobs} stages), {series} series, {how}, n={len(times)}:")
    for url, measured in (("/metrics", times), ("/healthz (baseline: the HTTP stack alone)", baseline)):
        print(f"  {url}: median {statistics.median(measured):.2f} ms  p95 {percentile(measured, 0.95):.2f} ms  "
              f"min {min(measured):.2f} ms  max {max(measured):.2f} ms")


if __name__ == "__main__":
    main()
