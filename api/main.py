"""The API process: FastAPI app factory. It imports ``shared`` only, never the worker, so it never loads torch."""

from __future__ import annotations

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.limits import BodySizeLimit
from api.routes import artifacts, compare, datasets, hard_examples, health, jobs, presets


def create_app() -> FastAPI:
    app = FastAPI(
        title="stagerun",
        version="0.1.0",
        description="Staged object-detector training as a service: submit a pipeline, follow it, fetch its weights.",
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(artifacts.router)
    app.include_router(datasets.router)
    app.include_router(hard_examples.router)
    app.include_router(compare.router)
    app.include_router(presets.router)
    return app


app = create_app()
