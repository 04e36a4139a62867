"""The one Celery app, configured from settings. The API sends stage tasks by name through it and
never imports the worker; the worker registers its tasks on it."""

from __future__ import annotations

from functools import lru_cache

from celery import Celery

from shared.settings import Settings, get_settings
from shared.sqla_broker import celery_broker

RUN_STAGE_TASK = "stagerun.run_stage"


def make_celery(settings: Settings) -> Celery:
    broker_url, broker_transport = celery_broker(settings.broker_url, settings.broker_poll_interval_s)
    app = Celery("stagerun", broker=broker_url, set_as_current=False)
    transport_options: dict = {}
    if broker_transport:
        app.conf.broker_transport = broker_transport
    if settings.broker_url.startswith(("redis", "rediss")):
        # A stage can run for hours; the database, not a redelivery, decides what runs (see states.claim_stage).
        transport_options["visibility_timeout"] = 7 * 24 * 3600
    app.conf.update(
        task_default_queue=settings.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        worker_hijack_root_logger=False,
    )
    return app


@lru_cache
def get_celery() -> Celery:
    return make_celery(get_settings())


def enqueue_stage(stage_id: int) -> None:
    settings = get_settings()
    get_celery().send_task(RUN_STAGE_TASK, args=[stage_id], queue=settings.queue)


def broker_reachable(timeout_s: float = 2.0) -> bool:
    try:
        with get_celery().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout_s)
        return True
    except Exception:
        return False
