"""One JSON error shape for every failure: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import StagerunError, error_body
from shared.schemas import STAGE_TYPES

log = logging.getLogger(__name__)


def _field_of(location: tuple) -> str:
    """``('body', 'stages', 0, 'train', 'epochs')`` -> ``stages.0.epochs`` (the union tag is noise)."""
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    cleaned = [p for i, p in enumerate(parts) if not (i > 0 and parts[i - 1].isdigit() and p in STAGE_TYPES)]
    return ".".join(cleaned)


NAMED_FIELD = re.compile(r"^([A-Za-z_][\w.\-]*): (.+)$", re.S)


def _problem(error: dict) -> dict:
    """One validation problem as ``{field, message}``. A check of the whole body (a preset's expansion, a model
    validator) names its field at the start of its message (``overrides.stages.x: ...``): that becomes the field."""
    field = _field_of(tuple(error.get("loc", ())))
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    if not field and (named := NAMED_FIELD.match(message)):
        field, message = named.group(1), named.group(2)
    return {"field": field, "message": message}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StagerunError)
    async def _domain(_request: Request, exc: StagerunError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content=exc.to_dict(), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        unparseable = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if unparseable is not None:
            reason = (unparseable.get("ctx") or {}).get("error", "")
            message = "request body is not valid JSON" + (f" ({reason})" if reason else "")
            return JSONResponse(status_code=400, content=error_body("bad_request", message, "body"))
        details = [_problem(e) for e in errors] or [{"field": "", "message": "invalid request"}]
        field, message = details[0]["field"], details[0]["message"]
        body = error_body("invalid_request", f"{field}: {message}" if field else message, field or None, details)
        return JSONResponse(status_code=422, content=body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(status_code=exc.status_code, content=error_body(code, str(exc.detail)), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(status_code=500, content=error_body("internal", f"internal error: {type(exc).__name__}"))
