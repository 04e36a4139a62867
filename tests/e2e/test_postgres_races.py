"""On PostgreSQL, with the schema from Alembic: two worker processes racing for one stage (one claims it,
the other runs nothing), and migrations upgraded over a populated 0001 database, then downgraded."""

from __future__ import annotations

import multiprocessing
import os
import uuid

import psycopg
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.production]
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


@pytest.fixture
def postgres(monkeypatch, tmp_path):
    name = f"stagerun_races_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    for key in list(os.environ):
        if key.startswith("STAGERUN_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("STAGERUN_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("STAGERUN_DATABASE_URL", url)
    from tests.conftest import reset_caches

    reset_caches()
    yield name, url
    reset_caches()
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


def _claim(url: str, stage_id: int, worker: str, barrier, results) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from shared.states import claim_stage

    engine = create_engine(url)
    with Session(engine) as session:
        barrier.wait()
        won = claim_stage(session, stage_id, worker)
        session.commit()
    results.put((worker, won))


def test_two_worker_processes_racing_for_one_stage_claim_it_once(postgres, tmp_path) -> None:
    _, url = postgres
    from shared import migrate
    from shared.db import session_scope
    from shared.models import Job, Stage, utcnow

    migrate.upgrade()
    with session_scope() as session:
        job = Job(id=uuid.uuid4().hex, name="race", tags=[], state="queued", dataset="d", model="m", spec={},
                  created_at=utcnow(), owner="local")
        session.add(job)
        session.flush()
        stage = Stage(job_id=job.id, index=0, type="train", state="queued", spec={}, dir="jobs/x/01-train")
        session.add(stage)
        session.commit()
        stage_id = stage.id
    context = multiprocessing.get_context("spawn")
    for _round in range(5):
        with session_scope() as session:
            row = session.get(Stage, stage_id)
            row.state, row.worker_id = "queued", None
            session.commit()
        barrier, results = context.Barrier(2), context.Queue()
        racers = [context.Process(target=_claim, args=(url, stage_id, f"w{i}", barrier, results)) for i in (1, 2)]
        for racer in racers:
            racer.start()
        outcomes = dict(results.get(timeout=60) for _ in racers)
        for racer in racers:
            racer.join(timeout=60)
        assert sorted(outcomes.values()) == [False, True], outcomes
        with session_scope() as session:
            row = session.get(Stage, stage_id)
            assert row.state == "running" and row.worker_id == next(w for w, won in outcomes.items() if won)


def test_migrations_upgrade_a_populated_0001_database_and_downgrade(postgres) -> None:
    from alembic import command
    from sqlalchemy import create_engine, inspect, text

    from shared import migrate

    _, url = postgres
    config = migrate.alembic_config()
    command.upgrade(config, "0001")
    engine = create_engine(url)
    with engine.begin() as connection:
        columns = {c["name"] for c in inspect(connection).get_columns("jobs")}
        values = {"id": "a" * 32, "name": "old", "tags": "[]", "state": "succeeded", "dataset": "tiny",
                  "model": "yolov8n.yaml", "spec": "{}", "created_at": "2026-01-01T00:00:00+00:00"}
        values = {k: v for k, v in values.items() if k in columns}
        placeholders = ", ".join(f":{k}" for k in values)
        connection.execute(text(f"INSERT INTO jobs ({', '.join(values)}) VALUES ({placeholders})"), values)
    migrate.upgrade()
    assert migrate.is_up_to_date()
    with engine.begin() as connection:
        row = connection.execute(text("SELECT name, state, owner FROM jobs WHERE id = :id"), {"id": "a" * 32}).one()
        assert (row.name, row.state, row.owner) == ("old", "succeeded", None)  # kept; ownerless: admins see it
        tables = set(inspect(connection).get_table_names())
    assert {"jobs", "stages", "metric_rows", "api_tokens", "datasets"} <= tables
    command.downgrade(config, "0001")
    with engine.begin() as connection:
        assert connection.execute(text("SELECT name FROM jobs WHERE id = :id"), {"id": "a" * 32}).scalar() == "old"
        tables = set(inspect(connection).get_table_names())
    assert "api_tokens" not in tables and "datasets" not in tables
    engine.dispose()
