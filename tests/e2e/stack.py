"""Real API and worker processes for end-to-end tests, and the checks they share."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
TERMINAL = {"succeeded", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = {**os.environ, **env, "YOLO_OFFLINE": "1"}
        self.log_dir = log_dir
        self.port = int(env["STAGERUN_API_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def stagerun(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "stagerun"), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self, name: str, *args: str) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [str(BIN / "stagerun"), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def up(self) -> None:
        upgrade = self.stagerun("db", "upgrade", timeout=120)
        assert upgrade.returncode == 0, upgrade.stderr
        self.start("api", "api")
        self.start("worker", "worker")
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"API not ready: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.log_dir.glob("*.log"))

    def down(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def wait_for(self, job_id: str, predicate, timeout_s: float = 400, interval_s: float = 0.5) -> dict:
        deadline = time.monotonic() + timeout_s
        with self.client() as client:
            while time.monotonic() < deadline:
                job = client.get(f"/v1/jobs/{job_id}").json()
                if predicate(job):
                    return job
                time.sleep(interval_s)
        raise AssertionError(f"job {job_id} never reached the condition; last: {job}\n{self.logs()}")

    def wait_done(self, job_id: str, timeout_s: float = 400) -> dict:
        return self.wait_for(job_id, lambda job: job["state"] in TERMINAL, timeout_s)


ISOLATED_LOAD = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"api", "worker", "shared"}:
                raise ImportError(f"{name} is blocked: stagerun is absent here")

    sys.meta_path.insert(0, Block())
    for name in ("api", "worker", "shared"):
        try:
            __import__(name)
        except ImportError:
            continue
        raise SystemExit(f"{name} is importable")
    from ultralytics import YOLO

    model = YOLO(sys.argv[1])
    result = model.predict(sys.argv[2], imgsz=64, conf=0.001, verbose=False)[0]
    print("names", sorted(model.names.values()), "boxes", len(result.boxes))
    """
)


def load_in_plain_ultralytics(weights: Path, image: Path, workdir: Path) -> str:
    """Load weights and predict in a fresh interpreter where stagerun's packages cannot be imported."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGERUN_")}
    env.update(YOLO_OFFLINE="1", YOLO_CONFIG_DIR=str(workdir / "yolo"), PYTHONPATH="")
    done = subprocess.run(
        [sys.executable, "-I", "-c", ISOLATED_LOAD, str(weights), str(image)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
