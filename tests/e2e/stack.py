"""Real API and worker processes for end-to-end tests, and the checks they share."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from client.stack import Stack as CliStack

TERMINAL = {"succeeded", "failed", "cancelled", "gated"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack(CliStack):
    """``stagerun``'s own process launcher, plus what tests need to follow jobs."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        super().__init__(log_dir=log_dir, env=env)

    def up(self) -> None:
        self.start()
        try:
            self.wait_ready()
        except RuntimeError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.log_dir.glob("*.log"))

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

    def run_to_success(self, pipeline: dict, timeout_s: float = 400) -> dict:
        """Submit a pipeline, wait for it to end, and require that it succeeded; returns the job."""
        with self.client() as client:
            submitted = client.post("/v1/jobs", json=pipeline)
        assert submitted.status_code == 202, submitted.text
        job = self.wait_done(submitted.json()["id"], timeout_s)
        assert job["state"] == "succeeded", [(s["type"], s["state"], s["error"]) for s in job["stages"]]
        return job


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
