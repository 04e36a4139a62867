"""The Alembic migrations build exactly the tables the models describe, and undo cleanly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from shared import migrate
from shared.db import get_engine
from shared.models import Base


def test_migrations_match_models(embedded) -> None:
    with get_engine().connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    assert migrate.is_up_to_date()


def test_downgrade_to_base_and_back(embedded) -> None:
    from alembic import command
    from sqlalchemy import inspect

    config = migrate.alembic_config()
    engine = get_engine()
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set(Base.metadata.tables)
    command.downgrade(config, "base")
    assert not migrate.is_up_to_date()
    assert set(inspect(engine).get_table_names()) - {"alembic_version"} == set()  # everything was dropped
    migrate.upgrade()
    assert migrate.is_up_to_date()
    assert set(inspect(engine).get_table_names()) - {"alembic_version"} == tables  # and built again
