"""The error responses every /v1 route may give, documented with the one error shape."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FieldProblem(BaseModel):
    field: str
    message: str
    code: str | None = Field(None, description="For dataset findings: the kind (label_fields, image_unreadable, ...).")
    file: str | None = Field(None, description="For dataset findings: the file, relative to the dataset folder.")
    line: int | None = Field(None, description="For dataset findings: the line of a label file.")


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable kind, e.g. not_found, invalid_spec, unauthorized.")
    message: str
    field: str | None = Field(description="The request field at fault, dotted (stages.0.epochs).")
    details: list[FieldProblem] | None = Field(None, description="Every field problem, for invalid requests.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _error(description: str) -> dict:
    return {"model": ErrorResponse, "description": description}


V1_ERRORS: dict[int | str, dict] = {
    400: _error("Malformed request (e.g. a path that cannot be used)."),
    401: _error("Missing, unknown or revoked bearer token."),
    404: _error("Not found, or owned by someone else."),
    413: _error("Request body too large."),
    422: _error("Invalid request; the field at fault is named."),
}
CONFLICT = {409: _error("The request conflicts with the current state.")}
RATE_LIMITED = {
    429: {
        **_error("Too many jobs created with this token; retry after Retry-After seconds."),
        "headers": {"Retry-After": {"description": "Seconds to wait before the next job.", "schema": {"type": "integer"}}},
    }
}
EVENT_STREAM = {
    200: {
        "description": "Server-sent events, each with an ``id:``. A new stream starts with ``retry:`` and "
        "``event: job`` (the whole job document), then sends ``state`` (the job's state changed), ``stage`` (a "
        "stage's state changed) and ``epoch`` (an epoch's metrics) events as they are stored, and ``end`` once the "
        "job has ended and everything was sent. Reconnecting with ``Last-Event-ID`` (browsers do it themselves) "
        "resumes after that event: no gap, no repeat, no snapshot.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
UNSUPPORTED_MEDIA_TYPE = {415: _error("Body is neither JSON nor a multipart upload.")}
