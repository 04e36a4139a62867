"""The scale-out path end to end: PostgreSQL (schema by Alembic) and Redis, a real API and Celery worker."""

import uuid

import psycopg
import pytest
import redis
from alembic.script import ScriptDirectory

from shared import migrate
from tests.e2e.checks import check_metric_rows_match_results_csv, check_weights_download_and_plain_load, tiny_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.production]
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


@pytest.fixture(scope="module")
def database():
    name = f"stagerun_e2e_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL must run on 127.0.0.1:5432 (.ci/run starts it): {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="module")
def stack(stack_factory, database):
    redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=5).ping()
    queue = f"stagerun-e2e-{uuid.uuid4().hex[:8]}"
    return stack_factory(
        "production",
        {"STAGERUN_DATABASE_URL": database, "STAGERUN_BROKER_URL": "redis://127.0.0.1:6379/0", "STAGERUN_QUEUE": queue},
    )


def test_schema_comes_from_alembic(stack, database):
    with psycopg.connect(database.replace("postgresql+psycopg", "postgresql")) as connection:
        tables = {r[0] for r in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        version = connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    head = ScriptDirectory.from_config(migrate.alembic_config(database)).get_current_head()
    assert {"jobs", "stages", "metric_rows", "api_tokens", "datasets", "alembic_version"} <= tables
    assert version == head
    assert not (stack.home / "stagerun.db").exists() and not (stack.home / "broker.db").exists()


def test_train_evaluate_on_postgres_and_redis(stack, tmp_path):
    with stack.client() as client:
        first = client.post("/v1/jobs", json=tiny_pipeline(epochs=1), headers={"Idempotency-Key": "prod-1"})
        replay = client.post("/v1/jobs", json=tiny_pipeline(epochs=1), headers={"Idempotency-Key": "prod-1"})
    assert first.status_code == replay.status_code == 202 and first.json()["id"] == replay.json()["id"]
    job = stack.wait_done(first.json()["id"])
    assert job["state"] == "succeeded", job
    assert [s["state"] for s in job["stages"]] == ["succeeded", "succeeded"]
    assert job["stages"][0]["worker_id"] and job["stages"][1]["results"]["split"] == "val"
    rows = check_metric_rows_match_results_csv(stack, job, 0)
    assert len(rows) == 1
    check_weights_download_and_plain_load(stack, job, tmp_path)
    with stack.client() as client:
        assert client.get("/v1/jobs", params={"state": "succeeded"}).json()["count"] == 1
