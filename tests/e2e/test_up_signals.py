"""``stagerun up`` stopped by SIGTERM (docker, systemd, kill) or SIGHUP stops its API and worker and waits
for them: no orphan keeps the port (issue 14)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import free_port

pytestmark = pytest.mark.slow


def children_of(pid: int) -> set[int]:
    found, pending = set(), [pid]
    while pending:
        parent = pending.pop()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == parent and int(entry.name) not in found:
                    found.add(int(entry.name))
                    pending.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_up_and_its_children(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGERUN_")}
    env.update(STAGERUN_HOME=str(tmp_path / "var"), STAGERUN_API_PORT=str(port), YOLO_OFFLINE="1")
    up = subprocess.Popen([sys.executable, "-m", "client.cli", "up"], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("the API of 'stagerun up' never answered")
        children = children_of(up.pid)
        assert len(children) >= 2
        up.send_signal(sig)
        assert up.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in children if alive(pid)]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # the port is free again
    finally:
        if up.poll() is None:
            up.kill()
        for pid in children_of(up.pid):
            os.kill(pid, signal.SIGKILL)


def test_the_api_stops_on_sigterm_while_an_event_stream_is_open(tmp_path_factory) -> None:
    import threading

    from tests.e2e.checks import train_only_pipeline
    from tests.e2e.conftest import make_stack

    stack = make_stack(tmp_path_factory, "shutdown", {"STAGERUN_API_SHUTDOWN_GRACE_S": "2"})
    stack.up()
    try:
        stack.processes["worker"].send_signal(signal.SIGTERM)  # no worker: the job stays queued, its stream open
        stack.processes["worker"].wait(timeout=60)
        with stack.client() as client:
            job = client.post("/v1/jobs", json=train_only_pipeline(epochs=1)).json()
        received: list[bytes] = []

        def listen() -> None:
            with stack.client() as client, client.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=60) as stream:
                try:
                    for chunk in stream.iter_bytes():
                        received.append(chunk)
                except httpx.HTTPError:
                    pass

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            time.sleep(0.2)
        assert received, "the event stream sent nothing"
        api = stack.processes["api"]
        stopped_at = time.monotonic()
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=20)
        assert time.monotonic() - stopped_at < 15
        listener.join(timeout=10)
        assert not listener.is_alive()  # the stream was ended, not left hanging
    finally:
        stack.stop()
