"""Starting stagerun's server processes: the commands for the API and a worker, and a launcher
that runs both (``stagerun up``, ``stagerun demo``, the end-to-end tests and the benchmarks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.settings import get_settings


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def api_command(host: str, port: int, shutdown_grace_s: int = 5) -> list[str]:
    """uvicorn waits for open requests on SIGTERM; an event stream never ends by itself, so it is cut after
    ``shutdown_grace_s`` (clients reconnect with Last-Event-ID)."""
    return python_module(
        "uvicorn", "api.main:app", "--host", host, "--port", str(port), "--log-level", "info",
        "--timeout-graceful-shutdown", str(shutdown_grace_s),
    )


def worker_command(concurrency: int, queue: str) -> list[str]:
    return python_module(
        "celery", "-A", "worker.celery_app", "worker", "--loglevel", "INFO", "-Q", queue, "-c", str(concurrency)
    )


class Stack:
    """The API and one worker as child processes (``stagerun up``, ``stagerun demo``, tests, benchmarks).

    ``env`` overrides this process's environment for the children, so one process can run stacks
    on other databases and brokers; the schema is migrated by ``stagerun db upgrade`` in that env."""

    def __init__(self, log_dir: Path | None = None, env: dict[str, str] | None = None):
        self.env = {**os.environ, **(env or {}), "YOLO_OFFLINE": "1"}
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self.token = ""
        self.token_created = False
        if env is None:
            self.url = get_settings().api_url
        else:
            host = self.env.get("STAGERUN_API_HOST", "127.0.0.1")
            self.url = self.env.get("STAGERUN_API_URL") or f"http://{host}:{self.env.get('STAGERUN_API_PORT', '8000')}"

    def stagerun(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run a stagerun command in the stack's environment."""
        command = [sys.executable, "-m", "client.cli", *args]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout)

    def start_process(self, name: str, command: list[str]) -> None:
        output = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=self.env)

    def start(self) -> None:
        upgrade = self.stagerun("db", "upgrade", timeout=300)
        if upgrade.returncode != 0:
            raise RuntimeError(f"database upgrade failed:\n{upgrade.stdout}{upgrade.stderr}")
        local = self.stagerun("token", "local", timeout=120)
        if local.returncode != 0:
            raise RuntimeError(f"could not make the local API token:\n{local.stdout}{local.stderr}")
        self.token, self.token_created = local.stdout.strip(), local.stderr.strip().endswith("created")
        self.start_process("api", python_module("client.cli", "api"))
        self.start_worker()

    def start_worker(self) -> None:
        self.start_process("worker", python_module("client.cli", "worker"))

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self) -> httpx.Client:
        """An HTTP client for this stack's API, sending the local admin token."""
        return httpx.Client(base_url=self.url, timeout=30, headers=self.auth_headers())

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes.values()):
                raise RuntimeError("the API or the worker exited while starting; see their logs")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"API not ready at {self.url} after {timeout_s:.0f}s")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
