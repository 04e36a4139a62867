"""Prometheus /metrics: the exposition parses, the database numbers match what is stored, and request latency
is labelled by route template."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from shared.db import session_scope
from shared.models import Job, MetricRow, Stage, utcnow


def scrape(client: TestClient, **headers) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def add_job(session, state: str, stages: list[dict], owner: str = "tester") -> Job:
    job = Job(id=uuid.uuid4().hex, name="j", tags=[], state=state, dataset="d", model="m", spec={}, owner=owner,
              created_at=utcnow())
    job.stages = [
        Stage(index=i, type=s.get("type", "train"), state=s["state"], spec={}, dir=f"0{i}", attempt=s.get("attempt", 0),
              started_at=s.get("started_at"), finished_at=s.get("finished_at"))
        for i, s in enumerate(stages)
    ]
    session.add(job)
    session.flush()
    return job


def populate(session) -> None:
    """Jobs in several states, stages that ran for known times, and metric rows in and out of the 5-minute window."""
    now = utcnow()
    add_job(session, "queued", [{"state": "queued"}, {"state": "pending", "type": "evaluate"}])
    add_job(session, "queued", [{"state": "queued"}])
    running = add_job(session, "running", [{"state": "running", "attempt": 1, "started_at": now}])
    add_job(session, "succeeded", [
        {"state": "succeeded", "attempt": 1, "started_at": now - timedelta(seconds=100), "finished_at": now},
        {"state": "succeeded", "attempt": 2, "started_at": now - timedelta(seconds=4000), "finished_at": now},
        {"state": "failed", "type": "evaluate", "attempt": 1, "started_at": now - timedelta(seconds=5),
         "finished_at": now},
    ])
    # A re-run's reused stage (it never ran) and a stage cancelled before it started: no duration.
    add_job(session, "cancelled", [
        {"state": "succeeded", "started_at": now, "finished_at": now},
        {"state": "cancelled", "finished_at": now},
    ])
    stage_id = running.stages[0].id
    for epoch in range(10):
        session.add(MetricRow(stage_id=stage_id, epoch=epoch, values={}, created_at=now - timedelta(seconds=epoch)))
    for epoch in range(10, 13):
        session.add(MetricRow(stage_id=stage_id, epoch=epoch, values={}, created_at=now - timedelta(minutes=10)))
    session.commit()


def check_populated_snapshot(snapshot) -> None:
    assert snapshot.jobs == {"queued": 2, "running": 1, "succeeded": 1, "cancelled": 1}
    assert snapshot.stages == {"queued": 2, "pending": 1, "running": 1, "succeeded": 3, "failed": 1, "cancelled": 1}
    assert snapshot.queue_depth == 2
    assert set(snapshot.durations) == {"train", "evaluate"}
    train, evaluate = snapshot.durations["train"], snapshot.durations["evaluate"]
    assert train.count == 2 and train.sum_s == pytest.approx(4100, abs=0.5)
    # buckets 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, ...: 100 s falls in 120, 4000 s in 7200
    assert train.cumulative[:9] == [0, 0, 0, 1, 1, 1, 1, 1, 2] and train.cumulative[-1] == 2
    assert evaluate.count == 1 and evaluate.sum_s == pytest.approx(5, abs=0.5) and evaluate.cumulative[0] == 1
    assert snapshot.epochs_last_window == 10


def test_metrics_need_no_token_and_parse(anonymous):
    samples = scrape(anonymous)
    assert value(samples, "stagerun_database_up") == 1
    assert value(samples, "stagerun_jobs", state="queued") == 0
    assert value(samples, "stagerun_queue_depth") == 0
    assert value(samples, "stagerun_epochs_per_minute") == 0


def test_job_counts_and_queue_depth_match_what_was_created(client, anonymous, pipeline):
    jobs = [client.post("/v1/jobs", json=pipeline).json() for _ in range(3)]
    assert client.post(f"/v1/jobs/{jobs[0]['id']}/cancel").status_code == 202
    with session_scope() as session:
        running = session.get(Job, jobs[1]["id"])
        running.state = "running"
        running.stages[0].state = "running"
    samples = scrape(anonymous)
    expected_jobs = {"queued": 1, "running": 1, "cancelled": 1, "succeeded": 0, "failed": 0, "gated": 0}
    assert {state: value(samples, "stagerun_jobs", state=state) for state in expected_jobs} == expected_jobs
    # each job: a train stage then an evaluate stage
    expected_stages = {"queued": 1, "pending": 2, "running": 1, "cancelled": 2, "succeeded": 0, "skipped": 0}
    assert {state: value(samples, "stagerun_stages", state=state) for state in expected_stages} == expected_stages
    assert value(samples, "stagerun_queue_depth") == 1


def test_stage_durations_and_epoch_rate(embedded, anonymous):
    with session_scope() as session:
        populate(session)
    samples = scrape(anonymous)
    assert value(samples, "stagerun_queue_depth") == 2
    assert value(samples, "stagerun_stage_duration_seconds_count", type="train") == 2
    assert value(samples, "stagerun_stage_duration_seconds_sum", type="train") == pytest.approx(4100, abs=0.5)
    assert value(samples, "stagerun_stage_duration_seconds_bucket", type="train", le="60.0") == 0
    assert value(samples, "stagerun_stage_duration_seconds_bucket", type="train", le="120.0") == 1
    assert value(samples, "stagerun_stage_duration_seconds_bucket", type="train", le="7200.0") == 2
    assert value(samples, "stagerun_stage_duration_seconds_bucket", type="train", le="+Inf") == 2
    assert value(samples, "stagerun_stage_duration_seconds_bucket", type="evaluate", le="10.0") == 1
    assert value(samples, "stagerun_epochs_per_minute") == pytest.approx(2.0)  # 10 rows in the last 5 minutes


def test_snapshot_on_sqlite(embedded):
    from api.prometheus import read_snapshot

    with session_scope() as session:
        populate(session)
        check_populated_snapshot(read_snapshot(session.connection()))


def test_request_latency_is_labelled_by_route_template(client, anonymous, pipeline):
    job = client.post("/v1/jobs", json=pipeline).json()
    for _ in range(2):
        assert client.get(f"/v1/jobs/{job['id']}").status_code == 200
    assert client.get(f"/v1/jobs/{'0' * 32}").status_code == 404
    assert client.get("/v1/no-such-route").status_code == 404
    assert client.request("BREW", "/v1/jobs").status_code == 405
    samples = scrape(anonymous)
    name = "stagerun_http_request_duration_seconds_count"
    assert value(samples, name, method="GET", route="/v1/jobs/{job_id}", status="200") == 2
    assert value(samples, name, method="GET", route="/v1/jobs/{job_id}", status="404") == 1
    assert value(samples, name, method="POST", route="/v1/jobs", status="202") == 1
    assert value(samples, name, method="GET", route="unmatched", status="404") == 1
    assert value(samples, name, method="other", route="/v1/jobs", status="405") == 1
    assert value(samples, "stagerun_http_request_duration_seconds_bucket", method="GET", route="/v1/jobs/{job_id}",
                 status="200", le="+Inf") == 2
    routes = {dict(labels).get("route") for (sample, labels) in samples if sample.startswith("stagerun_http")}
    assert not any(job["id"] in route or "0" * 32 in route for route in routes if route)
    assert value(samples, name, method="GET", route="/metrics", status="200") is None  # this scrape ends later
    assert value(scrape(anonymous), name, method="GET", route="/metrics", status="200") >= 1


def test_each_app_has_its_own_registry(embedded):
    from api.main import create_app

    first, second = create_app(), create_app()
    assert first.state.prometheus_registry is not second.state.prometheus_registry
    with TestClient(first) as one, TestClient(second) as two:
        one.get("/healthz")
        name = "stagerun_http_request_duration_seconds_count"
        assert value(scrape(one), name, method="GET", route="/healthz", status="200") == 1
        assert value(scrape(two), name, method="GET", route="/healthz", status="200") is None


def test_openmetrics_when_asked(anonymous):
    response = anonymous.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_a_database_that_does_not_answer_still_gives_a_scrape(anonymous, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from api import prometheus

    def down(_session):
        raise OperationalError("SELECT", {}, Exception("database is gone"))

    monkeypatch.setattr(prometheus, "read_snapshot", down)
    samples = scrape(anonymous)
    assert value(samples, "stagerun_database_up") == 0
    assert value(samples, "stagerun_jobs", state="queued") is None
    assert value(scrape(anonymous), "stagerun_http_request_duration_seconds_count", method="GET", route="/metrics",
                 status="200") == 1  # the request metrics still come through


@pytest.mark.production
def test_snapshot_on_postgresql(postgres):
    """The same numbers from PostgreSQL (the duration arithmetic is written per dialect)."""
    from api.prometheus import read_snapshot

    with session_scope() as session:
        populate(session)
        check_populated_snapshot(read_snapshot(session.connection()))
