"""Prometheus metrics of one API app: what the database says at scrape time, and how long requests take.

Every app (``create_app``) gets its own ``CollectorRegistry``, so tests that make several apps never clash
and nothing lands in prometheus_client's process-global registry. Two parts:

- ``DatabaseCollector`` reads the database when ``/metrics`` is scraped (the database is the source of
  truth, so every API replica reports the same numbers): jobs and stages by state (one GROUP BY each; the
  queue depth is the stages in state ``queued`` from the same query), stage durations as a histogram over
  every finished stage (one GROUP BY over the stages table, bucket counts summed in SQL), and epochs per
  minute over the last 5 minutes (a count of the newest metric rows). Four small queries a scrape, built
  once per dialect.
- ``RequestLatency``, an ASGI middleware, times every HTTP request into a histogram labelled by method,
  route template (``/v1/jobs/{job_id}``, never the raw path) and status, so the label set stays bounded.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from sqlalchemy import Connection, Float, Select, bindparam, case, cast, extract, func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import get_engine
from shared.models import Job, MetricRow, Stage, utcnow
from shared.states import JobState, StageState

log = logging.getLogger(__name__)

STAGE_DURATION_BUCKETS_S = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400)
"""Stage durations run from seconds (an evaluate on a small set) to many hours (a long training)."""
HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
EPOCH_RATE_WINDOW = timedelta(minutes=5)
EPOCH_RATE_MAX_ROWS = 10_000
"""The epoch rate reads the metric rows among the newest ids only (a range of the primary key), so its cost stays
bounded as the table grows; it saturates at 2000 epochs a minute."""
TIMED_STAGE_STATES = (StageState.SUCCEEDED.value, StageState.FAILED.value, StageState.CANCELLED.value)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route matched (a 404 for an unknown path, a 413 refused before routing)."""


@dataclass
class StageDurations:
    count: int = 0
    sum_s: float = 0.0
    cumulative: list[int] = field(default_factory=lambda: [0] * len(STAGE_DURATION_BUCKETS_S))


@dataclass
class DatabaseSnapshot:
    jobs: dict[str, int]
    stages: dict[str, int]
    durations: dict[str, StageDurations]
    epochs_last_window: int

    @property
    def queue_depth(self) -> int:
        return self.stages.get(StageState.QUEUED.value, 0)


def _seconds(dialect: str, start, end):
    """``end - start`` in seconds, in SQL (SQLite keeps timestamps as text, PostgreSQL as timestamptz)."""
    if dialect == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return cast(extract("epoch", end - start), Float)


@dataclass(frozen=True)
class _Queries:
    jobs: Select
    stages: Select
    durations: Select
    epochs: Select


@cache
def _queries(dialect: str) -> _Queries:
    """Built once per dialect: building the expressions costs more than running them on a small database."""
    # Stages that ran (attempt > 0: a re-run's reused stage never ran) and ended; started_at excludes the idle
    # time of a resumed job (shared/states.py), so this is running time.
    ran = select(
        Stage.type.label("type"), _seconds(dialect, Stage.started_at, Stage.finished_at).label("seconds")
    ).where(
        Stage.state.in_(TIMED_STAGE_STATES),
        Stage.attempt > 0,
        Stage.started_at.is_not(None),
        Stage.finished_at.is_not(None),
    )
    ran = ran.cte("ran")
    if dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
        # Else SQLite inlines the CTE and works the julianday arithmetic out again for every bucket: 8x slower.
        ran = ran.prefix_with("MATERIALIZED")
    bucket_counts = [func.sum(case((ran.c.seconds <= bound, 1), else_=0)) for bound in STAGE_DURATION_BUCKETS_S]
    newest_ids = select(func.max(MetricRow.id) - EPOCH_RATE_MAX_ROWS).scalar_subquery()
    return _Queries(
        jobs=select(Job.state, func.count()).group_by(Job.state),
        stages=select(Stage.state, func.count()).group_by(Stage.state),
        durations=select(ran.c.type, func.count(), func.sum(ran.c.seconds), *bucket_counts).group_by(ran.c.type),
        # The newest rows by id only (ids follow creation), so the cost stays bounded as the table grows.
        epochs=select(func.count())
        .select_from(MetricRow)
        .where(MetricRow.id > newest_ids, MetricRow.created_at >= bindparam("since")),
    )


def read_snapshot(connection: Connection) -> DatabaseSnapshot:
    """What the database says now, in four queries of constant-size results."""
    queries = _queries(connection.dialect.name)
    jobs = {state: int(count) for state, count in connection.execute(queries.jobs)}
    stages = {state: int(count) for state, count in connection.execute(queries.stages)}
    durations = {
        stage_type: StageDurations(int(count), float(total or 0.0), [int(c or 0) for c in cumulative])
        for stage_type, count, total, *cumulative in connection.execute(queries.durations)
    }
    epochs = connection.execute(queries.epochs, {"since": utcnow() - EPOCH_RATE_WINDOW}).scalar() or 0
    return DatabaseSnapshot(jobs=jobs, stages=stages, durations=durations, epochs_last_window=int(epochs))


def _families(snapshot: DatabaseSnapshot | None) -> Iterator[Metric]:
    up = GaugeMetricFamily("stagerun_database_up", "1 when the database answered this scrape's queries, else 0.")
    up.add_metric([], 0 if snapshot is None else 1)
    yield up
    jobs = GaugeMetricFamily("stagerun_jobs", "Jobs in the database, by state.", labels=["state"])
    stages = GaugeMetricFamily("stagerun_stages", "Stages in the database, by state.", labels=["state"])
    depth = GaugeMetricFamily(
        "stagerun_queue_depth", "Stages in state queued in the database: waiting for a worker to claim them."
    )
    durations = HistogramMetricFamily(
        "stagerun_stage_duration_seconds",
        "Running time (started to finished) of every stage in the database that ran and ended "
        "(succeeded, failed or cancelled), by stage type; computed from the database at scrape time.",
        labels=["type"],
    )
    rate = GaugeMetricFamily(
        "stagerun_epochs_per_minute", "Training epochs finished per minute, over the last 5 minutes (all jobs)."
    )
    if snapshot is not None:
        for state in JobState:  # every state, 0 included, so a series never vanishes
            jobs.add_metric([state.value], snapshot.jobs.get(state.value, 0))
        for state in StageState:
            stages.add_metric([state.value], snapshot.stages.get(state.value, 0))
        depth.add_metric([], snapshot.queue_depth)
        for stage_type, measured in sorted(snapshot.durations.items()):
            bounds = zip(STAGE_DURATION_BUCKETS_S, measured.cumulative, strict=True)
            buckets = [(floatToGoString(bound), count) for bound, count in bounds]
            durations.add_metric([stage_type], [*buckets, ("+Inf", measured.count)], measured.sum_s)
        rate.add_metric([], snapshot.epochs_last_window / (EPOCH_RATE_WINDOW.total_seconds() / 60))
    yield from (jobs, stages, depth, durations, rate)


class DatabaseCollector:
    """Reads the database on every collect (a scrape). A database that does not answer gives
    ``stagerun_database_up 0`` and no database metrics, rather than a failed scrape: the request metrics
    still come through."""

    def describe(self) -> Iterable[Metric]:
        return list(_families(None))

    def collect(self) -> Iterable[Metric]:
        try:
            with get_engine().connect() as connection:  # Core, not an ORM session: cheaper by a third
                snapshot = read_snapshot(connection)
        except SQLAlchemyError:
            log.exception("metrics: the database did not answer")
            snapshot = None
        return list(_families(snapshot))


def new_registry() -> tuple[CollectorRegistry, Histogram]:
    """A registry for one app, with the database collector and the request latency histogram on it."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector())
    latency = Histogram(
        "stagerun_http_request_duration_seconds",
        "Time from a request's arrival until its response status and headers are sent, by method, route "
        "template and status. A download's or an event stream's body is not counted (it would swamp the buckets).",
        ["method", "route", "status"],
        buckets=HTTP_BUCKETS_S,
        registry=registry,
    )
    return registry, latency


class RouteTemplates:
    """The full template (``/v1/jobs/{job_id}``) of the route a request matched. The router leaves the matched
    route in ``scope["route"]``; FastAPI 0.16x keeps an included router's routes with their own path
    (``/{job_id}``), the prefixes living in the route contexts that ``fastapi.routing.iter_route_contexts``
    lists. Built once, on the first request, when every route is in place."""

    def __init__(self) -> None:
        self._templates: dict[int, list[tuple[object, str]]] | None = None

    def _build(self, app) -> dict[int, list[tuple[object, str]]]:
        try:
            from fastapi.routing import iter_route_contexts
        except ImportError:  # a FastAPI that flattens included routes: each route has its full path
            contexts: Iterable = ((route, route) for route in app.routes)
        else:
            contexts = ((c.original_route, c) for c in iter_route_contexts(app.routes))
        templates: dict[int, list[tuple[object, str]]] = {}
        for original, context in contexts:
            template = getattr(context, "path_format", None)
            if template:
                templates.setdefault(id(original), []).append((context, template))
        return templates

    def of(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED_ROUTE
        if self._templates is None and "app" in scope:
            self._templates = self._build(scope["app"])
        candidates = (self._templates or {}).get(id(route), [])
        if len(candidates) == 1:
            return candidates[0][1]
        for context, template in candidates:  # one route included under several prefixes
            regex = getattr(context, "path_regex", None)
            if regex is not None and regex.match(scope.get("path", "")):
                return template
        return getattr(route, "path_format", None) or UNMATCHED_ROUTE


class RequestLatency:
    """Times each HTTP request until its response starts (status and headers sent), or until it fails."""

    def __init__(self, app: ASGIApp, histogram: Histogram):
        self.app = app
        self.histogram = histogram
        self.routes = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            method = scope.get("method", "")
            self.histogram.labels(
                method if method in METHODS else "other", self.routes.of(scope), str(status)
            ).observe(time.perf_counter() - started)

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except Exception:  # the outer error handler answers it with a 500
            record(500)
            raise
