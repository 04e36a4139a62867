"""GET /v1/jobs/{id}/logs over stage.log files the tests write as a stage's process would: plain text (ANSI codes
stripped, a redrawn progress bar one line), tail, every stage under its header, 404s, and follow=true streaming
lines while they are written until the job ends (or the client goes away)."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from shared.db import session_scope
from shared.models import Job
from shared.states import JobState, StageState, move_job, move_stage, stage_succeeded

RED, RESET, ERASE = "\x1b[31m", "\x1b[0m", "\x1b[K"
RAW_TRAIN_LOG = (
    f"{RED}stage 0 (train) starting{RESET}\n"
    "      Epoch    GPU_mem   box_loss\n"
    f"        1/1      0.1G      1.234: 10%|#         | 1/10\r{ERASE}        1/1      0.1G      1.100: 50%|#####     "
    f"| 5/10\r        1/1      0.1G      1.000: 100%|##########| 10/10\n"
    f"\x1b[1mAll done\x1b[0m\n"
)
PLAIN_TRAIN_LOG = [
    "stage 0 (train) starting",
    "      Epoch    GPU_mem   box_loss",
    "        1/1      0.1G      1.000: 100%|##########| 10/10",
    "All done",
]


def log_file(embedded, job: dict, index: int):
    path = embedded.artifacts_root / job["stages"][index]["dir"] / "stage.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def start(job_id: str) -> None:
    """The job running its first stage, as a worker leaves it."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        move_job(job, JobState.RUNNING)
        move_stage(job.stages[0], StageState.RUNNING)


def finish_stage(job_id: str, index: int) -> None:
    """Stage ``index`` (running) succeeds; the next one, queued by that, starts running."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        following = stage_succeeded(job, job.stages[index])
        if following is not None:
            move_stage(following, StageState.RUNNING)


def test_a_stage_log_is_plain_text(client, pipeline, embedded) -> None:
    job = client.post("/v1/jobs", json=pipeline).json()
    start(job["id"])
    log_file(embedded, job, 0).write_bytes(RAW_TRAIN_LOG.encode())
    response = client.get(f"/v1/jobs/{job['id']}/logs", params={"stage": 0})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "".join(line + "\n" for line in PLAIN_TRAIN_LOG)
    assert "\x1b" not in response.text and "\r" not in response.text


def test_every_stage_under_its_header_and_an_unstarted_stage_is_empty(client, pipeline, embedded) -> None:
    job = client.post("/v1/jobs", json=pipeline).json()
    start(job["id"])
    log_file(embedded, job, 0).write_bytes(RAW_TRAIN_LOG.encode())
    whole = client.get(f"/v1/jobs/{job['id']}/logs")
    assert whole.status_code == 200
    assert whole.text.splitlines() == ["==> stage 0 (train) <==", *PLAIN_TRAIN_LOG, "==> stage 1 (evaluate) <=="]
    unstarted = client.get(f"/v1/jobs/{job['id']}/logs", params={"stage": 1})
    assert unstarted.status_code == 200 and unstarted.text == ""
    fresh = client.post("/v1/jobs", json=pipeline).json()  # queued: no stage has written anything
    assert client.get(f"/v1/jobs/{fresh['id']}/logs", params={"stage": 0}).text == ""


def test_tail_is_the_last_lines_of_each_stage(client, pipeline, embedded) -> None:
    job = client.post("/v1/jobs", json=pipeline).json()
    start(job["id"])
    finish_stage(job["id"], 0)
    log_file(embedded, job, 0).write_bytes(RAW_TRAIN_LOG.encode())
    lines = [f"line {i} " + "x" * (i % 300) for i in range(2000)]  # over 64 KiB: read backwards in chunks
    log_file(embedded, job, 1).write_text("\n".join(lines) + "\npartial progress\r50%")  # unfinished last line
    url = f"/v1/jobs/{job['id']}/logs"
    assert client.get(url, params={"stage": 0, "tail": 2}).text == "".join(f"{x}\n" for x in PLAIN_TRAIN_LOG[-2:])
    assert client.get(url, params={"stage": 0, "tail": 100}).text == "".join(f"{x}\n" for x in PLAIN_TRAIN_LOG)
    assert client.get(url, params={"stage": 1, "tail": 1}).text == "50%\n"
    assert client.get(url, params={"stage": 1, "tail": 1500}).text.splitlines() == [*lines[-1499:], "50%"]
    assert client.get(url, params={"stage": 1}).text.splitlines() == [*lines, "50%"]
    both = client.get(url, params={"tail": 1}).text.splitlines()
    assert both == ["==> stage 0 (train) <==", "All done", "==> stage 1 (evaluate) <==", "50%"]
    for bad in (0, 100_001, -1):
        refused = client.get(url, params={"tail": bad})
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "tail"


def test_unknown_jobs_other_owners_jobs_and_missing_stages_are_404(client, client_for, pipeline) -> None:
    unknown = client.get(f"/v1/jobs/{'f' * 32}/logs")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {"code": "not_found", "message": f"job {'f' * 32} not found", "field": "job_id"}
    job = client.post("/v1/jobs", json=pipeline).json()
    missing = client.get(f"/v1/jobs/{job['id']}/logs", params={"stage": 2})
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "not_found",
        "message": f"job {job['id']} has no stage 2 (it has stages 0..1)",
        "field": "stage",
    }
    owner, stranger = client_for("team-a"), client_for("team-b")
    theirs = owner.post("/v1/jobs", json=pipeline).json()["id"]
    assert owner.get(f"/v1/jobs/{theirs}/logs").status_code == 200
    for params in ({}, {"follow": "true"}, {"stage": 0}):
        hidden = stranger.get(f"/v1/jobs/{theirs}/logs", params=params)
        assert hidden.status_code == 404 and hidden.json()["error"]["message"] == f"job {theirs} not found"


def test_the_route_declares_plain_text(app) -> None:
    operation = app.openapi()["paths"]["/v1/jobs/{job_id}/logs"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["text/plain"]
    assert {"401", "404", "422"} <= set(operation["responses"])
    assert list(operation["responses"]["404"]["content"]) == ["application/json"]  # errors are the JSON envelope
    assert {p["name"] for p in operation["parameters"]} == {"job_id", "stage", "tail", "follow"}


@pytest.fixture
def fast_follow(monkeypatch):
    """Poll every 50 ms, and record what each poll of a follower handed out."""
    from api.routes import jobs as routes
    from shared.stage_logs import LogFollower

    monkeypatch.setattr(routes, "FOLLOW_POLL_S", 0.05)
    chunks: list[str] = []
    polled = threading.Event()
    original = LogFollower.poll

    def poll(self, job):
        text = original(self, job)
        chunks.append(text)
        polled.set()
        return text

    monkeypatch.setattr(LogFollower, "poll", poll)
    return chunks, polled


@pytest.mark.timeout(60)
def test_follow_streams_lines_as_they_are_written_until_the_job_ends(client, pipeline, embedded, fast_follow) -> None:
    chunks, polled = fast_follow
    job = client.post("/v1/jobs", json=pipeline).json()
    start(job["id"])
    train_log, evaluate_log = log_file(embedded, job, 0), log_file(embedded, job, 1)
    train_log.write_text("line 0\n")

    def write(path, text: str) -> None:
        with path.open("ab") as handle:
            handle.write(text.encode())
        time.sleep(0.03)

    def run_the_job() -> None:
        assert polled.wait(20)  # the stream is open
        for i in range(1, 8):
            write(train_log, f"{RED}line {i}{RESET}\n")
        write(train_log, "line 8 is wri")  # half a line: held back until its newline comes
        write(train_log, "tten in two\n")
        for percent in (10, 50, 100):
            write(train_log, f"\r{ERASE}epoch 1/1: {percent}%")
        write(train_log, "\n")
        write(train_log, "last line without a newline")
        finish_stage(job["id"], 0)  # the process has ended: the unfinished line is complete
        time.sleep(0.2)
        write(evaluate_log, "evaluating\n")
        write(evaluate_log, "mAP50 0.5\n")
        finish_stage(job["id"], 1)  # the job succeeds

    writer = threading.Thread(target=run_the_job)
    writer.start()
    try:
        response = client.get(f"/v1/jobs/{job['id']}/logs", params={"follow": "true"})
    finally:
        writer.join(30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    expected = [
        "==> stage 0 (train) <==",
        *(f"line {i}" for i in range(8)),
        "line 8 is written in two",
        "epoch 1/1: 100%",
        "last line without a newline",
        "==> stage 1 (evaluate) <==",
        "evaluating",
        "mAP50 0.5",
    ]
    assert response.text.splitlines() == expected  # every line once, in order, and the stream ended
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "succeeded"
    assert len([c for c in chunks if c]) > 2  # handed out while being written, not all at the end
    assert "".join(chunks) == response.text
    assert client.get(f"/v1/jobs/{job['id']}/logs").text == response.text  # the same as once it is over


@pytest.mark.timeout(60)
def test_follow_one_stage_with_tail_and_a_finished_job(client, pipeline, embedded, fast_follow) -> None:
    job = client.post("/v1/jobs", json=pipeline).json()
    start(job["id"])
    log_file(embedded, job, 0).write_text("".join(f"l{i}\n" for i in range(10)) + "unfinished")

    def end_later() -> None:
        time.sleep(0.3)
        with session_scope() as session:
            stored = session.get(Job, job["id"])
            move_stage(stored.stages[0], StageState.FAILED, error="boom")
            from shared.states import settle_job_after_stage

            settle_job_after_stage(stored, stored.stages[0])

    ender = threading.Thread(target=end_later)
    ender.start()
    try:
        followed = client.get(f"/v1/jobs/{job['id']}/logs", params={"follow": "true", "stage": 0, "tail": 3})
    finally:
        ender.join(30)
    assert followed.text.splitlines() == ["l8", "l9", "unfinished"]  # 3 lines: the last one came at the end
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "failed"
    again = client.get(f"/v1/jobs/{job['id']}/logs", params={"follow": "true", "tail": 2})  # ends at once
    assert again.text.splitlines() == ["==> stage 0 (train) <==", "l9", "unfinished", "==> stage 1 (evaluate) <=="]
    assert client.get(f"/v1/jobs/{job['id']}/logs", params={"follow": "true", "stage": 1}).text == ""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
def test_follow_stops_when_the_client_goes_away(app, client, pipeline, embedded, fast_follow, spec_version) -> None:
    """Driven as a server would (the test client waits for the whole body): the job never ends, the client
    disconnects after the first lines, and the app returns."""
    from api import deps
    from tests.api_clients import new_token

    chunks, _ = fast_follow
    job = client.post("/v1/jobs", json=pipeline).json()
    start(job["id"])
    log_file(embedded, job, 0).write_text("first\n")
    deps.database_limiter.cache_clear()  # made in this event loop, not the test client's
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/v1/jobs/{job['id']}/logs",
        "raw_path": f"/v1/jobs/{job['id']}/logs".encode(),
        "query_string": b"follow=true",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {new_token('tester', True)}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []

    async def drive() -> None:
        gone = anyio.Event()
        asked = False

        async def receive() -> dict:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if not gone.is_set():
                await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and message.get("body"):
                gone.set()

        with anyio.fail_after(20):
            await app(scope, receive, send)

    anyio.run(drive)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"==> stage 0 (train) <==\nfirst\n"
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "running"
    polls = len(chunks)
    time.sleep(0.3)
    assert len(chunks) == polls  # nothing polls any more


def test_cli_logs_prints_the_text_and_follows(client, pipeline, embedded, app, monkeypatch, capsys) -> None:
    from fastapi.testclient import TestClient

    from client import api_client
    from client.cli import main
    from tests.api_clients import new_token

    headers = {"Authorization": f"Bearer {new_token('tester', admin=True, name='cli')}"}
    monkeypatch.setattr(api_client, "_client", lambda: TestClient(app, headers=headers))
    job = client.post("/v1/jobs", json=pipeline).json()
    start(job["id"])
    log_file(embedded, job, 0).write_bytes(RAW_TRAIN_LOG.encode())
    assert main(["logs", job["id"], "--stage", "0"]) == 0
    assert capsys.readouterr().out.splitlines() == PLAIN_TRAIN_LOG
    assert main(["logs", job["id"], "--tail", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["==> stage 0 (train) <==", "All done", "==> stage 1 (evaluate) <=="]
    client.post(f"/v1/jobs/{job['id']}/cancel")  # the running stage stops: here, as its worker would record it
    with session_scope() as session:
        from shared.states import settle_job_after_stage

        stored = session.get(Job, job["id"])
        move_stage(stored.stages[0], StageState.CANCELLED)
        settle_job_after_stage(stored, stored.stages[0])
    assert main(["logs", job["id"], "-f", "--stage", "0", "--tail", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == PLAIN_TRAIN_LOG[-2:]
    assert main(["logs", job["id"], "--stage", "5"]) == 1
    assert capsys.readouterr().err == f"error: HTTP 404: job {job['id']} has no stage 5 (it has stages 0..1)\n"
