"""Domain errors, raised anywhere and turned into one JSON error shape at the API edge."""

from __future__ import annotations


def error_body(code: str, message: str, field: str | None = None, details: list[dict] | None = None) -> dict:
    """The one error shape every failure is answered with: ``{"error": {"code", "message", "field"[, "details"]}}``."""
    body: dict = {"code": code, "message": message, "field": field}
    if details is not None:
        body["details"] = details
    return {"error": body}


class StagerunError(Exception):
    status_code = 400
    code = "bad_request"
    headers: dict[str, str] | None = None

    def __init__(self, message: str, field: str | None = None, details: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_dict(self) -> dict:
        return error_body(self.code, self.message, self.field, self.details)


class InvalidSpec(StagerunError):
    status_code = 422
    code = "invalid_spec"


class NotFound(StagerunError):
    status_code = 404
    code = "not_found"


class Conflict(StagerunError):
    status_code = 409
    code = "conflict"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class PathOutsideRoot(StagerunError):
    """A path given by a user that would leave the root it must stay in."""

    status_code = 400
    code = "path_outside_root"


class UnusablePath(PathOutsideRoot):
    """A path given by a user that the file system cannot look up (too long, a symlink loop)."""

    code = "invalid_path"


class Unauthorized(StagerunError):
    """No token, an unknown one, or a revoked one."""

    status_code = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(StagerunError):
    """A valid token that may not do this (an admin-only route called with a non-admin token)."""

    status_code = 403
    code = "forbidden"


class PayloadTooLarge(StagerunError):
    status_code = 413
    code = "too_large"


class RateLimited(StagerunError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float, field: str | None = None):
        super().__init__(message, field)
        self.headers = {"Retry-After": str(max(1, int(retry_after_s + 0.999)))}


class RangeNotSatisfiable(StagerunError):
    status_code = 416
    code = "range_not_satisfiable"

    def __init__(self, message: str, size: int, field: str | None = "Range"):
        super().__init__(message, field)
        self.headers = {"Content-Range": f"bytes */{size}"}
