"""The worker side of the one Celery app (``celery -A worker.celery_app worker``)."""

from __future__ import annotations

import logging

from celery.signals import after_setup_logger, after_setup_task_logger, worker_process_init, worker_ready

from shared import log_format
from shared.db import get_engine
from shared.queue import enqueue_stage, get_celery

app = get_celery()
app.conf.imports = ("worker.tasks",)
log = logging.getLogger(__name__)


@after_setup_logger.connect
@after_setup_task_logger.connect
def _structured_logs(logger=None, **_kwargs) -> None:
    from shared.settings import get_settings

    if get_settings().log_format == "json":
        formatter = log_format.JsonFormatter()
        for handler in (logger.handlers if logger is not None else []):
            handler.setFormatter(formatter)


@worker_process_init.connect
def _fresh_connections(**_kwargs) -> None:
    get_engine().dispose(close=False)  # connections must not be shared across a fork


@worker_ready.connect
def _resend_queued_and_start_reaper(**_kwargs) -> None:
    from shared.settings import get_settings
    from worker.pipeline import requeue_queued_stages
    from worker.reaper import Reaper

    count = requeue_queued_stages(enqueue_stage)
    if count:
        log.info("re-sent %d queued stage(s) to the broker", count)
    Reaper(get_settings(), enqueue_stage).start()
