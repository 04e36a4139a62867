from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from shared.db import get_engine
from shared.queue import broker_reachable

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


def _database_reachable() -> bool:
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@router.get(
    "/readyz",
    responses={
        200: {"description": "The database and the broker answer."},
        503: {"description": "The database or the broker does not answer; the body says which."},
    },
)
async def readyz() -> JSONResponse:
    """The database and the broker answer."""
    database = await run_in_threadpool(_database_reachable)
    broker = await run_in_threadpool(broker_reachable)
    ready = database and broker
    return JSONResponse(
        status_code=200 if ready else 503,
        content={"status": "ready" if ready else "not ready", "database": database, "broker": broker},
    )
