"""Structured logs (``STAGERUN_LOG_FORMAT=json``): one JSON object per line, with the job and stage a line is
about. The ids come from a context variable that the worker binds around a stage and the API binds around a
request for a job, so every logger (ours, Celery's, Ultralytics') gets them without passing them around."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

CONTEXT_KEYS = ("job_id", "stage_id", "stage_index")
_context: ContextVar[tuple[tuple[str, object], ...]] = ContextVar("stagerun_log_context", default=())


def _merged(ids: dict) -> tuple[tuple[str, object], ...]:
    return tuple({**dict(_context.get()), **{k: v for k, v in ids.items() if v is not None}}.items())


def current() -> dict:
    return dict(_context.get())


@contextmanager
def bound(**ids: object) -> Iterator[None]:
    """Attach these ids (job_id, stage_id, stage_index) to every log line written inside the block."""
    token = _context.set(_merged(ids))
    try:
        yield
    finally:
        _context.reset(token)


def bind(**ids: object) -> None:
    """Attach ids for the rest of this context (a stage process: one stage for its whole life)."""
    _context.set(_merged(ids))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(current())
        for key in CONTEXT_KEYS:  # ids passed as ``extra=`` win over the bound ones
            if key in record.__dict__:
                line[key] = record.__dict__[key]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def use_json(
    loggers: tuple[str, ...] = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "celery", "ultralytics"),
) -> None:
    """Give every handler of these loggers the JSON formatter; the root logger gets a stderr handler if it has
    none, so nothing is written in the text format any more."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
        root.setLevel(logging.INFO)
    formatter = JsonFormatter()
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)


def configure(log_format: str) -> None:
    if log_format == "json":
        use_json()
