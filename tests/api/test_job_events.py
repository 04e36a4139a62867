"""The event stream from the job event log: ids on every event, resuming with Last-Event-ID (no gap, no repeat),
per-epoch and stage events written by the real writers (shared/states.py, worker/reporting.py)."""

from __future__ import annotations

import json

import pytest

from shared import states
from shared.db import session_scope
from shared.models import Job, JobEvent, Stage
from worker.reporting import StageReporter


def read_stream(client, job_id: str, headers: dict | None = None, **params) -> tuple[list[str], list[dict]]:
    """The raw ``retry:`` lines and the events (id, event, data) of a stream read to its end."""
    retries, events, current = [], [], {}
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers or {}, params=params) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("retry: "):
                retries.append(line)
            elif line.startswith("id: "):
                current["id"] = int(line.removeprefix("id: "))
            elif line.startswith("event: "):
                current["event"] = line.removeprefix("event: ")
            elif line.startswith("data: "):
                current["data"] = json.loads(line.removeprefix("data: "))
            elif not line and current:
                events.append(current)
                current = {}
    return retries, events


# what run_two_epochs_then_finish logs: (kind, stage index, state or epoch)
LOGGED = [
    ("stage", 0, "running"),
    ("state", None, "running"),
    ("epoch", 0, 1),
    ("epoch", 0, 2),
    ("stage", 0, "succeeded"),
    ("stage", 1, "queued"),
    ("stage", 1, "running"),
    ("stage", 1, "succeeded"),
    ("state", None, "succeeded"),
]


def run_two_epochs_then_finish(job_id: str) -> None:
    """What a worker writes for a train stage of 2 epochs and an evaluate stage, through the same functions."""
    with session_scope() as session:
        train_id = session.query(Stage.id).filter_by(job_id=job_id, index=0).scalar()
        assert states.claim_stage(session, train_id, "worker-1")
        job = session.get(Job, job_id)
        states.move_job(job, states.JobState.RUNNING)
    reporter = StageReporter(train_id, job_id)
    for epoch in (1, 2):
        reporter.epoch_row({"epoch": epoch, "train/box_loss": 1.0 / epoch, "metrics/mAP50(B)": 0.1 * epoch}, 2)
    with session_scope() as session:
        job = session.get(Job, job_id)
        evaluate = states.stage_succeeded(job, job.stages[0])
        assert evaluate is not None and evaluate.index == 1
    with session_scope() as session:
        assert states.claim_stage(session, evaluate.id, "worker-1")
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert states.stage_succeeded(job, job.stages[1]) is None


def test_a_stream_sends_a_snapshot_then_every_logged_event_with_ids(client, pipeline):
    job = client.post("/v1/jobs", json=pipeline).json()
    run_two_epochs_then_finish(job["id"])
    retries, events = read_stream(client, job["id"], interval=0.2)
    assert retries == ["retry: 2000"]
    assert events[0]["event"] == "job" and events[0]["data"]["state"] == "succeeded"
    assert events[-1]["event"] == "end"
    ids = [event["id"] for event in events]
    assert all(isinstance(i, int) for i in ids)
    # a new stream's snapshot already holds everything: only the end follows it
    assert [event["event"] for event in events] == ["job", "end"] and ids[0] == ids[1]


def test_resuming_from_zero_replays_the_whole_log_in_order(client, pipeline):
    job = client.post("/v1/jobs", json=pipeline).json()
    run_two_epochs_then_finish(job["id"])
    _, events = read_stream(client, job["id"], headers={"Last-Event-ID": "0"}, interval=0.2)
    described = [
        (e["event"], e["data"].get("stage_index"), e["data"].get("state") or e["data"].get("epoch")) for e in events
    ]
    assert described == [*LOGGED, ("end", None, None)]
    ids = [e["id"] for e in events[:-1]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert events[3]["data"]["values"]["metrics/mAP50(B)"] == pytest.approx(0.2)


@pytest.mark.parametrize("cut", [1, 3, 6])
def test_last_event_id_resumes_after_that_event_with_no_gap_or_repeat(client, pipeline, cut):
    job = client.post("/v1/jobs", json=pipeline).json()
    run_two_epochs_then_finish(job["id"])
    _, everything = read_stream(client, job["id"], headers={"Last-Event-ID": "0"}, interval=0.2)
    seen = everything[:cut]
    _, rest = read_stream(client, job["id"], headers={"Last-Event-ID": str(seen[-1]["id"])}, interval=0.2)
    assert rest[0]["event"] != "job"  # no snapshot on a resume
    assert seen + rest == everything
    _, by_query = read_stream(client, job["id"], after=seen[-1]["id"], interval=0.2)
    assert by_query == rest


def test_events_arrive_while_the_job_runs(client, pipeline):
    """The log is read as it grows: a stream opened on a queued job sees the epochs written while it is read.
    It resumes from event 0, so that a request the test client only serves after the first epoch was written
    (on a loaded machine) still starts before it."""
    import threading

    job = client.post("/v1/jobs", json=pipeline).json()
    collected: dict = {}

    def listen() -> None:
        collected["events"] = read_stream(client, job["id"], headers={"Last-Event-ID": "0"}, interval=0.2)[1]

    listener = threading.Thread(target=listen)
    listener.start()
    run_two_epochs_then_finish(job["id"])
    listener.join(timeout=60)
    kinds = [e["event"] for e in collected["events"]]
    assert kinds[-1] == "end"  # resumed: no opening snapshot of the job
    assert [e["data"]["epoch"] for e in collected["events"] if e["event"] == "epoch"] == [1, 2]


def test_a_cancel_logs_every_stage_it_cancels(client, pipeline):
    job = client.post("/v1/jobs", json=pipeline).json()
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    _, events = read_stream(client, job["id"], headers={"Last-Event-ID": "0"})
    assert [(e["event"], e["data"].get("stage_index"), e["data"].get("state")) for e in events[:-1]] == [
        ("stage", 0, "cancelled"),
        ("stage", 1, "cancelled"),
        ("state", None, "cancelled"),
    ]


@pytest.mark.parametrize("value", ["abc", "-1", "1.5"])
def test_a_bad_last_event_id_is_a_422_naming_it(client, pipeline, value):
    job = client.post("/v1/jobs", json=pipeline).json()
    response = client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": value})
    assert response.status_code == 422 and response.json()["error"]["field"] == "Last-Event-ID"


def test_deleting_a_job_deletes_its_events(client, pipeline):
    job = client.post("/v1/jobs", json=pipeline).json()
    client.post(f"/v1/jobs/{job['id']}/cancel")
    with session_scope() as session:
        assert session.query(JobEvent).filter_by(job_id=job["id"]).count() == 3
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    with session_scope() as session:
        assert session.query(JobEvent).filter_by(job_id=job["id"]).count() == 0


@pytest.mark.production
def test_on_postgresql_events_are_read_only_once_settled(postgres):
    """PostgreSQL hands out ids before commit, so the reader waits out the settle window (shared/events.py)."""
    import time

    from shared import events

    with session_scope() as session:
        job = Job(name="pg", tags=[], state="queued", dataset="d", model="m", spec={}, owner="tester")
        session.add(job)
        session.flush()
        session.add_all(
            Stage(job_id=job.id, index=i, type=kind, state=state, spec={}, dir=f"jobs/{job.id}/{i}")
            for i, (kind, state) in enumerate([("train", "queued"), ("evaluate", "pending")])
        )
        job_id = job.id
    written_at = time.monotonic()
    run_two_epochs_then_finish(job_id)
    with session_scope() as session:
        early = events.read_after(session, job_id, 0)
    if time.monotonic() - written_at < events.SETTLE_S - 0.2:
        assert early == []  # written moments ago: not yet settled
    time.sleep(events.SETTLE_S + 0.5)
    with session_scope() as session:
        settled = events.read_after(session, job_id, 0)
        assert events.last_id(session, job_id) == settled[-1].id
    assert [(e.kind, e.stage_index, e.data.get("state") or e.data.get("epoch")) for e in settled] == LOGGED
