"""The API process: FastAPI app factory. It imports ``shared`` only, never the worker, so it never loads torch."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from api.errors import install_error_handlers
from api.limits import BodySizeLimit
from api.log_context import JobLogContext
from api.prometheus import RequestLatency, new_registry
from api.routes import (
    artifacts,
    compare,
    datasets,
    hard_examples,
    health,
    jobs,
    presets,
    prometheus,
    searches,
    tokens,
)
from api.ui import pages
from shared import log_format
from shared.settings import get_settings
from shared.urls import API_V1


def create_app() -> FastAPI:
    app = FastAPIOffline(  # /docs and /redoc from vendored Swagger UI and ReDoc assets: they work without internet
        title="stagerun",
        version="0.1.0",
        description="Staged object-detector training as a service: submit a pipeline, follow it, fetch its weights.",
    )
    install_error_handlers(app)
    settings = get_settings()
    log_format.configure(settings.log_format)
    if settings.log_format == "json":
        app.add_middleware(JobLogContext)
    app.add_middleware(BodySizeLimit)
    app.state.prometheus_registry, latency = new_registry()  # one registry per app: several apps never clash
    app.add_middleware(RequestLatency, histogram=latency)  # added last, so outermost: it times the 413s too
    app.include_router(health.router)
    app.include_router(prometheus.router)
    v1 = APIRouter(prefix=API_V1)  # the one place the version prefix is set: every resource router hangs here
    for resource in (jobs, searches, artifacts, datasets, hard_examples, compare, presets, tokens):
        v1.include_router(resource.router)
    app.include_router(v1)
    app.include_router(pages.router)  # the dashboard: /, /ui/jobs/{id}, /ui/compare, /ui/login
    app.mount("/ui/static", StaticFiles(directory=pages.HERE / "static"), name="ui-static")
    return app


app = create_app()
