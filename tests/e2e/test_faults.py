"""Faults a running stagerun must survive, against real processes and services: PostgreSQL (through a
TCP proxy the test can cut), the test's own Redis server, a real API and a real Celery worker.

Leases are short here (heartbeat 1 s, lease 12 s, reaper every 1 s, unclaimed queued stages re-sent
after 5 s) so that recovery takes seconds; production defaults are in shared/settings.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from client.stack import python_module
from shared.queue import RUN_STAGE_TASK, make_celery
from shared.settings import Settings
from tests.e2e.checks import train_only_pipeline
from tests.e2e.conftest import make_stack
from tests.e2e.faults import RedisServer, TcpProxy, stage_processes
from tests.e2e.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.production]
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
LEASE_TTL_S = 12


class FaultStack(Stack):
    """The API and a two-slot worker; the worker leads its own process group so a test can SIGKILL the
    whole group (main process and pool children) as a crash or the OOM killer would."""

    def start_worker(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / "worker.log").open("ab") as output:
            self.processes["worker"] = subprocess.Popen(
                python_module("client.cli", "worker", "--concurrency", "2"),
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def kill_worker_group(self) -> None:
        worker = self.processes["worker"]
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    def restart_api(self) -> None:
        api = self.processes["api"]
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=30)
        self.start_process("api", python_module("client.cli", "api"))
        self.wait_ready()

    def submit(self, pipeline: dict) -> str:
        with self.client() as client:
            response = client.post("/v1/jobs", json=pipeline)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def rows(self, job_id: str) -> list[int]:
        with self.client() as client:
            return [r["epoch"] for r in client.get(f"/v1/jobs/{job_id}/metrics").json()["rows"]]


@pytest.fixture(scope="module")
def database():
    name = f"stagerun_faults_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)
    admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="module")
def proxy():
    proxy = TcpProxy(5432)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, database, proxy, broker):
    queue = f"stagerun-faults-{uuid.uuid4().hex[:8]}"
    env = {
        "STAGERUN_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{database}",
        "STAGERUN_BROKER_URL": broker.url,
        "STAGERUN_QUEUE": queue,
        "STAGERUN_LEASE_TTL_S": str(LEASE_TTL_S),
        "STAGERUN_REAPER_INTERVAL_S": "1",
        "STAGERUN_REQUEUE_QUEUED_AFTER_S": "5",
    }
    stack = make_stack(tmp_path_factory, "faults", env, stack_class=FaultStack)
    stack.up()
    yield stack
    stack.stop()


def stage_row(database: str, job_id: str, index: int = 0) -> dict:
    """A stage as the database holds it (read directly, not through the proxy or the API)."""
    with psycopg.connect(f"{ADMIN_DSN.replace('dbname=test', f'dbname={database}')}") as connection:
        cursor = connection.execute(
            "SELECT id, state, attempt, worker_id, info FROM stages WHERE job_id = %s AND index = %s", (job_id, index)
        )
        names = [column.name for column in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def test_duplicate_delivery_runs_the_stage_once(stack, database, broker):
    job_id = stack.submit(train_only_pipeline(epochs=1))
    stage_id = stage_row(database, job_id)["id"]
    sender = make_celery(Settings(broker_url=broker.url, queue=stack.env["STAGERUN_QUEUE"], home=stack.home))
    for _ in range(3):  # the worker has a second free slot: a duplicate may arrive while the stage runs
        sender.send_task(RUN_STAGE_TASK, args=[stage_id], queue=stack.env["STAGERUN_QUEUE"])
    job = stack.wait_done(job_id, timeout_s=300)
    assert job["state"] == "succeeded", job
    assert job["stages"][0]["attempt"] == 1 and stack.rows(job_id) == [1]
    stage_log = (stack.home / "artifacts" / job["stages"][0]["dir"] / "stage.log").read_text()
    assert stage_log.count(f"stage {stage_id} (train) of job {job_id} starting") == 1
    deadline = time.monotonic() + 30  # all four messages are consumed; three of them claim nothing
    while (stack.log_dir / "worker.log").read_text().count("not-claimed") < 3:
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(0.5)


def test_worker_killed_mid_epoch_resumes_from_last_pt(stack, database):
    job_id = stack.submit(train_only_pipeline(epochs=4))
    stack.wait_for(job_id, lambda j: len(stack.rows(j["id"])) >= 2, timeout_s=300, interval_s=0.2)
    done_at_kill = len(stack.rows(job_id))
    before = stage_row(database, job_id)
    home = Path(stack.env["STAGERUN_HOME"])
    assert len(stage_processes(before["id"], home)) == 1  # the check below sees a live stage process
    stack.kill_worker_group()
    killed_at = time.monotonic()
    time.sleep(1)
    assert (
        stage_processes(before["id"], Path(stack.env["STAGERUN_HOME"])) == []
    )  # the stage process died with its worker, no orphan trains on
    assert stage_row(database, job_id)["state"] == "running"  # the lease has not expired yet

    stack.start_worker()
    stack.wait_for(job_id, lambda j: j["stages"][0]["attempt"] == 2, timeout_s=120, interval_s=0.5)
    recovered_s = time.monotonic() - killed_at
    # bounded by the lease, the reaper's interval and the new worker's start (60 s: a loaded CI machine)
    assert recovered_s < LEASE_TTL_S + 60, recovered_s
    job = stack.wait_done(job_id)
    train = job["stages"][0]
    assert job["state"] == "succeeded", job
    assert stack.rows(job_id) == [1, 2, 3, 4]  # no gap, no duplicate
    resumed = train["info"]["resumed"]
    assert len(resumed) == 1 and resumed[0]["checkpoint"] == f"{train['dir']}/weights/last.pt"
    # at most the epoch in progress is trained again (none when its last.pt was saved before the kill)
    assert resumed[0]["from_epoch"] in (done_at_kill + 1, done_at_kill + 2), (resumed, done_at_kill)
    assert train["worker_id"] != before["worker_id"]
    print(
        f"\nworker SIGKILL: {done_at_kill} epochs done, resumed at {resumed[0]['from_epoch']}, "
        f"recovered in {recovered_s:.1f}s (lease {LEASE_TTL_S}s)"
    )


def test_a_stage_process_killed_on_its_own_runs_again_from_last_pt(stack, database):
    """The kernel's OOM killer picks the stage process (it holds the most memory), not the worker."""
    job_id = stack.submit(train_only_pipeline(epochs=4))
    stack.wait_for(job_id, lambda j: len(stack.rows(j["id"])) >= 2, timeout_s=300, interval_s=0.2)
    stage = stage_row(database, job_id)
    [pid] = stage_processes(stage["id"], Path(stack.env["STAGERUN_HOME"]))
    os.kill(pid, signal.SIGKILL)
    job = stack.wait_done(job_id)
    train = job["stages"][0]
    assert job["state"] == "succeeded", job
    assert stack.rows(job_id) == [1, 2, 3, 4]
    [kill] = train["info"]["process_killed"]
    assert kill["signal"] == "SIGKILL" and kill["attempt"] == 1
    assert len(train["info"]["resumed"]) == 1


def test_four_worker_kills_with_progress_between_do_not_fail_the_job(stack, database):
    """The attempt cap counts losses in a row without a new epoch (default cap 3), not every loss: 4 > 3."""
    kills, epochs = 4, 6
    job_id = stack.submit(train_only_pipeline(epochs=epochs))
    for kill in range(kills):
        stack.wait_for(job_id, lambda j, n=kill: len(stack.rows(j["id"])) >= n + 1, timeout_s=300, interval_s=0.2)
        stack.kill_worker_group()
        stack.start_worker()
        stack.wait_for(job_id, lambda j, n=kill: j["stages"][0]["worker_id"] is not None
                       and j["stages"][0]["state"] == "running" and len(j["stages"][0]["info"].get("resumed", [])) > n,
                       timeout_s=120, interval_s=0.5)
    job = stack.wait_done(job_id)
    assert job["state"] == "succeeded", job
    assert stack.rows(job_id) == list(range(1, epochs + 1))
    assert len(job["stages"][0]["info"]["resumed"]) == kills


def test_api_restart_loses_nothing(stack):
    job_id = stack.submit(train_only_pipeline(epochs=2))
    stack.wait_for(job_id, lambda j: j["state"] == "running", timeout_s=120, interval_s=0.2)
    stack.restart_api()
    job = stack.wait_done(job_id)
    assert job["state"] == "succeeded" and stack.rows(job_id) == [1, 2]


def test_resume_cancelled_job_continues_from_last_pt(stack):
    epochs = 5  # room for the cancel to land before the last epoch on a slow or busy machine
    job_id = stack.submit(train_only_pipeline(epochs=epochs))
    stack.wait_for(job_id, lambda j: len(stack.rows(j["id"])) >= 1, timeout_s=300, interval_s=0.2)
    with stack.client() as client:
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    cancelled = stack.wait_done(job_id)
    assert cancelled["state"] == "cancelled"
    done = cancelled["stages"][0]["epoch"]
    assert 1 <= done < epochs
    resumed = stack.stagerun("resume", job_id, "--watch", timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    job = stack.wait_done(job_id)
    assert job["state"] == "succeeded" and stack.rows(job_id) == list(range(1, epochs + 1))
    assert job["stages"][0]["info"]["resumed"][-1]["from_epoch"] == done + 1


def test_broker_restarted_with_jobs_queued(stack, broker):
    running = [stack.submit(train_only_pipeline(epochs=2)) for _ in range(2)]  # both worker slots busy
    queued = stack.submit(train_only_pipeline(epochs=1))
    stack.wait_for(running[1], lambda j: j["state"] == "running", timeout_s=120, interval_s=0.2)
    broker.stop()  # no persistence: the queued message is gone
    during = stack.submit(train_only_pipeline(epochs=1))  # stored although it cannot be sent
    time.sleep(2)
    broker.start()
    for job_id in [*running, queued, during]:
        job = stack.wait_done(job_id, timeout_s=400)
        assert job["state"] == "succeeded", job
        assert job["stages"][0]["attempt"] == 1


def test_database_unreachable_during_writes(stack, proxy):
    job_id = stack.submit(train_only_pipeline(epochs=3))
    stack.wait_for(job_id, lambda j: len(stack.rows(j["id"])) >= 1, timeout_s=300, interval_s=0.2)
    proxy.cut(3.0)
    job = stack.wait_done(job_id)
    assert job["state"] == "succeeded", job
    train = job["stages"][0]
    assert stack.rows(job_id) == [1, 2, 3] and train["attempt"] == 1  # retried, not taken back
    stage_log = (stack.home / "artifacts" / train["dir"] / "stage.log").read_text()
    worker_log = (stack.log_dir / "worker.log").read_text()
    assert "database write failed" in stage_log + worker_log


def test_a_worker_cut_off_longer_than_its_lease_gives_its_stage_up(stack, database, proxy):
    """The database is unreachable for longer than the lease: the stage is taken back when it returns, the
    stage process that lost its lease is killed, and only the new attempt writes: no epoch row twice."""
    job_id = stack.submit(train_only_pipeline(epochs=6))
    stack.wait_for(job_id, lambda j: len(stack.rows(j["id"])) >= 1, timeout_s=300, interval_s=0.2)
    home = Path(stack.env["STAGERUN_HOME"])
    stage_id = stage_row(database, job_id)["id"]
    proxy.cut(LEASE_TTL_S + 6.0)
    most_at_once = 0
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        most_at_once = max(most_at_once, len(stage_processes(stage_id, home)))
        row = stage_row(database, job_id)
        if row["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    job = stack.wait_done(job_id)
    assert job["state"] == "succeeded", job
    assert stack.rows(job_id) == [1, 2, 3, 4, 5, 6]
    assert most_at_once <= 1  # the old stage process was gone before the new attempt started
    train = job["stages"][0]
    assert train["attempt"] >= 1 and train["info"].get("resumed"), train


def test_a_search_survives_its_worker_killed_mid_trial(stack, database):
    """The trials are child jobs and the study is in PostgreSQL: a killed worker costs at most the epoch in
    progress of the trial it was training, and the search ends with every trial."""
    epochs = 3
    search = {
        "type": "search", "trials": 2, "parallel": 2, "seed": 0, "metric": "mAP50", "imgsz": 64,
        "train": {"epochs": epochs, "imgsz": 64, "batch": 4, "workers": 0, "seed": 0},
        "space": {"box": {"low": 2.0, "high": 9.0}},
    }
    job_id = stack.submit({"name": "search-kill", "dataset": "tiny", "model": "yolov8n.yaml", "stages": [search]})

    def a_trial_trained_an_epoch(job: dict) -> bool:
        with stack.client() as client:
            trials = client.get("/v1/jobs", params={"parent": job["id"]}).json()["items"]
        return any(t["stages"][0]["epoch"] >= 1 and t["stages"][0]["state"] == "running" for t in trials)

    stack.wait_for(job_id, a_trial_trained_an_epoch, timeout_s=300, interval_s=0.2)
    with stack.client() as client:
        before = {t["id"]: t["stages"][0]["epoch"] for t in
                  client.get("/v1/jobs", params={"parent": job_id}).json()["items"]}
    stack.kill_worker_group()
    stack.start_worker()
    job = stack.wait_done(job_id, timeout_s=600)
    assert job["state"] == "succeeded", job
    with stack.client() as client:
        view = client.get(f"/v1/jobs/{job_id}/search").json()
        trials = client.get("/v1/jobs", params={"parent": job_id}).json()["items"]
    assert len(view["trials"]) == 2 and {t["state"] for t in view["trials"]} == {"COMPLETE"}
    assert view["best"]["job_id"] in before
    for trial in trials:
        assert trial["state"] == "succeeded"
        assert stack.rows(trial["id"]) == list(range(1, epochs + 1))  # no gap, no duplicate row
        for resumed in trial["stages"][0]["info"].get("resumed", []):  # at most the epoch in progress again
            assert resumed["from_epoch"] >= before[trial["id"]], (resumed, before)
    print(f"\nsearch worker SIGKILL: epochs done per trial at the kill {sorted(before.values())}, "
          f"resumed {[t['stages'][0]['info'].get('resumed') for t in trials]}")
