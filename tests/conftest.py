"""Fixtures shared by every test: an isolated stagerun home (SQLite database, SQLite broker) per test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")

pytest_plugins = ["tests.api_clients"]


def reset_caches() -> None:
    """Settings, engines and the Celery app are cached per process; tests change the environment."""
    from shared import db, queue, settings, studies

    for cached in (settings.get_settings, db.get_engine, db._session_factory, queue.get_celery, studies._storage):
        cached.cache_clear()
    try:  # the API's caches follow the settings (they are absent where api/ is not imported)
        from api import deps, limits
    except ImportError:
        return
    for cached in (deps.principal_cache, deps.job_cache, deps.database_limiter, limits.job_creation_limiter):
        cached.cache_clear()


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory) -> Path:
    """One SQLite file migrated to head, copied by each ``embedded`` test instead of running Alembic again."""
    from alembic import command

    from shared import migrate

    template = tmp_path_factory.mktemp("migrated") / "stagerun.db"
    command.upgrade(migrate.alembic_config(f"sqlite:///{template}"), "head")  # its own engine, closed after
    return template


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_database: Path):
    """Settings for the embedded default under a temp dir, with the schema migrated (a copy of one migrated file)."""
    for key in list(os.environ):
        if key.startswith("STAGERUN_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("STAGERUN_HOME", str(tmp_path / "var"))
    reset_caches()
    from shared.settings import get_settings

    settings = get_settings()
    settings.ensure_dirs()
    shutil.copyfile(migrated_database, settings.database_url.removeprefix("sqlite:///"))
    yield settings
    from shared.db import get_engine

    get_engine().dispose()
    reset_caches()


@pytest.fixture
def tiny_dataset(embedded) -> str:
    """An 8-image synthetic dataset under the datasets root; returns its name as a job names it."""
    from client.synthetic import make_dataset

    make_dataset(embedded.datasets_root / "tiny", train=8, val=4, size=64, seed=1)
    return "tiny"
