"""kombu's SQL transport for the embedded broker (``sqla+sqlite://``), tuned for a responsive queue.

kombu hands every transport option to ``create_engine``, so its ``polling_interval`` option cannot be
set for this transport; this subclass carries the interval itself and gives SQLite a busy timeout so
the API and the worker can share the broker file."""

from __future__ import annotations

from kombu.transport.sqlalchemy import Channel as SqlaChannel
from kombu.transport.sqlalchemy import Transport as SqlaTransport
from sqlalchemy import create_engine


class Channel(SqlaChannel):
    def _engine_from_config(self):
        url = self.connection.client.hostname
        connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
        return create_engine(url, connect_args=connect_args)


class Transport(SqlaTransport):
    Channel = Channel
    polling_interval = 0.1  # replaced by STAGERUN_BROKER_POLL_INTERVAL_S in celery_broker()


def celery_broker(url: str, polling_interval_s: float) -> tuple[str, str | None]:
    """(broker_url, broker_transport) for Celery: ``sqla+URL`` goes through this transport."""
    if url.startswith("sqla+"):
        Transport.polling_interval = polling_interval_s
        return url.removeprefix("sqla+"), f"{__name__}:Transport"
    return url, None
