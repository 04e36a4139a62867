"""The worker side of the one Celery app (``celery -A worker.celery_app worker``)."""

from __future__ import annotations

import logging

from celery.signals import worker_process_init, worker_ready

from shared.db import get_engine
from shared.queue import enqueue_stage, get_celery

app = get_celery()
app.conf.imports = ("worker.tasks",)
log = logging.getLogger(__name__)


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
