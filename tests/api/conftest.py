import os
import uuid

import pytest


@pytest.fixture
def pipeline(tiny_dataset):
    return {
        "name": "tiny",
        "tags": ["test"],
        "dataset": tiny_dataset,
        "model": "yolov8n.yaml",
        "stages": [{"type": "train", "epochs": 1, "imgsz": 64, "batch": 4}, {"type": "evaluate", "imgsz": 64}],
    }


ADMIN_DSN = os.environ.get("STAGERUN_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")


@pytest.fixture
def postgres(monkeypatch, tmp_path):
    """A fresh PostgreSQL database with the schema migrated (.ci/run starts the server; without one it fails)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL must run on 127.0.0.1:5432 (.ci/run starts it): {exc}")
    name = f"stagerun_filters_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    for key in list(os.environ):
        if key.startswith("STAGERUN_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("STAGERUN_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("STAGERUN_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    from shared import migrate
    from tests.conftest import reset_caches

    reset_caches()
    migrate.upgrade()
    yield
    from shared.db import get_engine

    get_engine().dispose()
    reset_caches()
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def cli(app, monkeypatch):
    from fastapi.testclient import TestClient

    from client import api_client
    from client.cli import main
    from tests.api_clients import new_token

    headers = {"Authorization": f"Bearer {new_token('tester', admin=True, name='cli')}"}
    monkeypatch.setattr(api_client, "_client", lambda: TestClient(app, headers=headers))
    return main
