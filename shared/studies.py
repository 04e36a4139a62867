"""Where a search stage's Optuna study lives: Optuna's RDB storage in stagerun's own database, so a study outlives
any worker and the API can read it.

Optuna keeps its own tables and its own Alembic version table (``alembic_version``), which stagerun's migrations
use too; so on PostgreSQL its tables live in a schema of their own (``optuna``) in the same database, and with the
embedded SQLite database in a SQLite file beside it (``<name>-optuna.db``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared.settings import Settings

OPTUNA_SCHEMA = "optuna"


def study_name(job_id: str, stage_index: int) -> str:
    return f"stagerun-{job_id}-{stage_index}"


def storage_url(database_url: str) -> tuple[str, dict]:
    """The URL and engine arguments of the study storage for stagerun's ``database_url``."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = Path(url.database or "stagerun.db")
        sibling = database.with_name(f"{database.stem}-optuna.db")
        return str(url.set(database=str(sibling))), {"connect_args": {"timeout": 30}}
    return database_url, {"connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}}


@lru_cache(maxsize=8)
def _storage(database_url: str):
    import optuna

    url, engine_kwargs = storage_url(database_url)
    if not url.startswith("sqlite"):
        engine = create_engine(database_url)
        with engine.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
        engine.dispose()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def storage(settings: Settings):
    return _storage(settings.database_url)


def load_study(settings: Settings, job_id: str, stage_index: int, sampler=None, pruner=None):
    """The study of stage ``stage_index`` of job ``job_id``, or None when it was never created."""
    import optuna

    try:
        return optuna.load_study(
            study_name=study_name(job_id, stage_index), storage=storage(settings), sampler=sampler, pruner=pruner
        )
    except KeyError:
        return None


def delete_study(settings: Settings, job_id: str, stage_index: int) -> None:
    import optuna

    try:
        optuna.delete_study(study_name=study_name(job_id, stage_index), storage=storage(settings))
    except KeyError:
        return
