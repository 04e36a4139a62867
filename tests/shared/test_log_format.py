"""Structured JSON logs (STAGERUN_LOG_FORMAT=json) with the job and stage a line is about."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from shared import log_format


@pytest.fixture
def captured():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_format.JsonFormatter())
    logger = logging.getLogger("stagerun.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_lines_carry_the_bound_ids_and_only_inside_the_block(captured):
    logger, lines = captured
    logger.info("before")
    with log_format.bound(job_id="a" * 32, stage_id=7):
        with log_format.bound(stage_index=1):
            logger.warning("inside %s", "both")
        logger.info("outer only")
    logger.info("after")
    before, inside, outer, after = lines()
    assert set(before) == {"time", "level", "logger", "message"} and before["message"] == "before"
    assert inside == {**inside, "level": "WARNING", "logger": "stagerun.test", "message": "inside both",
                      "job_id": "a" * 32, "stage_id": 7, "stage_index": 1}
    assert outer["stage_id"] == 7 and "stage_index" not in outer
    assert "job_id" not in after
    assert inside["time"].endswith("Z") and "T" in inside["time"]


def test_extra_ids_win_and_exceptions_are_kept(captured):
    logger, lines = captured
    with log_format.bound(job_id="b" * 32):
        try:
            raise ValueError("broken")
        except ValueError:
            logger.exception("failed", extra={"job_id": "c" * 32})
    (line,) = lines()
    assert line["job_id"] == "c" * 32 and "ValueError: broken" in line["exception"]


def test_the_api_middleware_binds_the_job_of_the_path(captured):
    from api.log_context import JobLogContext

    logger, lines = captured

    async def app(scope, receive, send):
        logger.info("handled %s", scope["path"])

    middleware = JobLogContext(app)
    job = "d" * 32
    for path in (f"/v1/jobs/{job}", f"/v1/jobs/{job}/events", "/v1/jobs", "/healthz"):
        asyncio.run(middleware({"type": "http", "path": path}, None, None))
    ids = [line.get("job_id") for line in lines()]
    assert ids == [job, job, None, None]


def test_configure_turns_the_root_handlers_to_json():
    root = logging.getLogger()
    saved = [(h, h.formatter) for h in root.handlers]
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        log_format.configure("text")
        assert not isinstance(handler.formatter, log_format.JsonFormatter)
        log_format.configure("json")
        assert isinstance(handler.formatter, log_format.JsonFormatter)
    finally:
        root.removeHandler(handler)
        for h, formatter in saved:
            h.setFormatter(formatter)


def test_the_setting_refuses_other_formats(monkeypatch):
    from pydantic import ValidationError

    from shared.settings import Settings

    monkeypatch.setenv("STAGERUN_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError):
        Settings()
