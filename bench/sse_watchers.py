"""20 concurrent watchers of one running job's event stream (issue 15): does every watcher get every event, in
order, and how late? A real embedded stack (API + worker, SQLite) trains a tiny model for --epochs epochs while
--watchers clients follow GET /v1/jobs/{id}/events; one more watcher drops its connection halfway and comes
back with Last-Event-ID, as a browser does. Printed side by side: one watcher alone against N at once, on the
same job length, in one run.

    .venv/bin/python bench/sse_watchers.py [--watchers 20] [--epochs 12]

"lag" is the time from an epoch's metric row being written (its created_at, same machine and clock) to a
watcher receiving its epoch event; it includes the stream's poll interval (0.5 s here). "complete" counts the
watchers that got exactly the ids the log holds, without gap or repeat."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import dataset, new_home, percentile, start_stack  # noqa: E402


async def watch(client: httpx.AsyncClient, job_id: str, received: list, after: int | None = None, stop_after=None):
    headers = {} if after is None else {"Last-Event-ID": str(after)}
    async with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, params={"interval": 0.5}) as stream:
        event_id, kind = None, None
        async for line in stream.aiter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                received.append((event_id, kind, json.loads(line[6:]), time.time()))
                if kind == "end" or (stop_after is not None and stop_after(received)):
                    return


async def run_case(stack, watchers: int, epochs: int) -> dict:
    pipeline = {
        "name": f"sse-{watchers}",
        "dataset": "bench",
        "model": "yolov8n.yaml",
        "stages": [{"type": "train", "epochs": epochs, "imgsz": 64, "batch": 4, "workers": 0, "seed": 0}],
    }
    async with httpx.AsyncClient(base_url=stack.url, headers=stack.auth_headers(), timeout=600) as client:
        job = (await client.post("/v1/jobs", json=pipeline)).json()
        streams = [[] for _ in range(watchers)]
        tasks = [asyncio.create_task(watch(client, job["id"], received)) for received in streams]
        dropped: list = []
        half = epochs // 2

        def at_half(received) -> bool:
            return sum(1 for _, kind, _, _ in received if kind == "epoch") >= half

        await watch(client, job["id"], dropped, stop_after=at_half)  # drops its connection halfway
        last_seen = dropped[-1][0]
        resumed: list = []
        await watch(client, job["id"], resumed, after=last_seen)
        await asyncio.gather(*tasks)
        log = await client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "0"})
        rows = (await client.get(f"/v1/jobs/{job['id']}/metrics")).json()["rows"]
    written = {(r["stage_index"], r["epoch"]): datetime.fromisoformat(r["created_at"]).timestamp() for r in rows}
    logged = [int(line[4:]) for line in log.text.splitlines() if line.startswith("id: ")][:-1]  # without end

    def ids(received) -> list[int]:
        return [event_id for event_id, kind, _, _ in received if kind not in ("job", "end")]

    def expected(received) -> list[int]:  # what the log holds after the watcher's snapshot (the snapshot has the rest)
        snapshot_id = received[0][0]
        return [event_id for event_id in logged if event_id > snapshot_id]

    complete = sum(1 for received in streams if ids(received) == expected(received))
    lags = [
        at - written[(data["stage_index"], data["epoch"])]
        for received in streams
        for _, kind, data, at in received
        if kind == "epoch"
    ]
    return {
        "watchers": watchers,
        "logged_events": len(logged),
        "complete": complete,
        "resumed_complete": ids(dropped) + ids(resumed) == expected(dropped),
        "lag_median_s": statistics.median(lags),
        "lag_p95_s": percentile(lags, 0.95),
        "lag_max_s": max(lags),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    home = new_home("sse")
    dataset(home, train=8, val=4, size=64, seed=1)
    stack = start_stack(home)
    try:
        results = [asyncio.run(run_case(stack, n, args.epochs)) for n in (1, args.watchers)]
    finally:
        stack.stop()
    print(f"{'watchers':>9} {'events':>7} {'complete':>9} {'resume ok':>10} {'lag median':>11} {'p95':>7} {'max':>7}")
    for r in results:
        print(
            f"{r['watchers']:>9} {r['logged_events']:>7} {r['complete']:>5}/{r['watchers']:<3} {str(r['resumed_complete']):>10}"
            f" {r['lag_median_s']:>10.3f}s {r['lag_p95_s']:>6.3f}s {r['lag_max_s']:>6.3f}s"
        )
    one, many = results
    print(f"p95 lag, {many['watchers']} watchers / 1 watcher: {many['lag_p95_s'] - one['lag_p95_s']:+.3f} s")


if __name__ == "__main__":
    main()
