"""Celery tasks: thin, they take ids and call the pipeline."""

from __future__ import annotations

from shared.queue import RUN_STAGE_TASK, enqueue_stage
from worker.celery_app import app
from worker.pipeline import execute_stage


@app.task(name=RUN_STAGE_TASK)
def run_stage(stage_id: int) -> str:
    return execute_stage(stage_id, enqueue=enqueue_stage)
