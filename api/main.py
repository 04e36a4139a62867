"""The API process: FastAPI app factory. It imports ``shared`` only, never the worker, so it never loads torch."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from api.errors import install_error_handlers
from api.limits import BodySizeLimit
from api.routes import artifacts, compare, datasets, hard_examples, health, jobs, presets
from shared.urls import API_V1


def create_app() -> FastAPI:
    app = FastAPI(
        title="stagerun",
        version="0.1.0",
        description="Staged object-detector training as a service: submit a pipeline, follow it, fetch its weights.",
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit)
    app.include_router(health.router)
    v1 = APIRouter(prefix=API_V1)  # the one place the version prefix is set: every resource router hangs here
    for resource in (jobs, artifacts, datasets, hard_examples, compare, presets):
        v1.include_router(resource.router)
    app.include_router(v1)
    return app


app = create_app()
