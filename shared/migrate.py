"""Schema management through Alembic (``stagerun db upgrade``); nothing calls ``create_all`` at run time."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from shared.db import get_engine
from shared.settings import get_settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url or get_settings().database_url)
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    settings = get_settings()
    if (database_url or settings.database_url).startswith("sqlite"):
        settings.ensure_dirs()
    command.upgrade(alembic_config(database_url), revision)


def is_up_to_date(database_url: str | None = None) -> bool:
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    with get_engine(database_url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head
