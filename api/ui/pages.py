"""The dashboard's pages: the jobs list at ``/``, a job's page, the compare page and the token login.

Pages read through the same ``shared`` functions as the ``/v1`` routes and are scoped the same way (a token sees
its owner's jobs; an admin token sees every job). A page asked for without a session sends the browser to the
login form; the buttons and live updates call the ``/v1`` API with the session cookie (api/ui/session.py)."""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.deps import principal_of_token
from api.ui import view
from api.ui.session import CSRF_COOKIE, end_session, session_token, start_session
from shared import compare, jobs
from shared.auth import Principal
from shared.db import new_session
from shared.errors import Forbidden, InvalidSpec, NotFound, StagerunError
from shared.settings import get_settings
from shared.states import JobState

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute or protocol-relative URL (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def _principal(request: Request) -> Principal | None:
    token = session_token(request)
    return None if token is None else await principal_of_token(token)


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={target}", status_code=status.HTTP_303_SEE_OTHER)


def _render(request: Request, name: str, context: dict, status_code: int = 200, principal=None) -> HTMLResponse:
    context = {"principal": principal, "csrf": request.cookies.get(CSRF_COOKIE, ""), **context}
    return templates.TemplateResponse(request, name, context, status_code=status_code)


@router.get("/ui/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/ui/login", response_class=HTMLResponse)
async def login(
    request: Request,
    token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    token = token.strip()
    principal = await principal_of_token(token) if token else None
    if principal is None:
        error = "Paste an API token." if not token else "That token is unknown or revoked."
        return _render(request, "login.html", {"next": _safe_next(next), "error": error}, status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    start_session(request, response, token)
    return response


@router.post("/ui/logout")
async def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    """A plain form post (no script needed), so the page's CSRF value comes as a form field."""
    expected = request.cookies.get(CSRF_COOKIE) or ""
    if not expected or not hmac.compare_digest(expected, csrf):
        raise Forbidden("sign-out needs the page's CSRF value (field csrf)", field="csrf")
    response = RedirectResponse("/ui/login", status_code=status.HTTP_303_SEE_OTHER)
    end_session(response)
    return response


def _list(principal: Principal, state: str | None, tag: list[str], name: str | None, owner: str | None, page: int):
    """A page of jobs; a search's trials and a k-fold's folds only when their tag (search:<id>, kfold:<id>) is asked
    for, so a 50-trial search is one row until opened."""
    children = any(t.startswith(("search:", "kfold:")) for t in tag)
    with new_session() as session:
        items, count = jobs.list_jobs(
            session, principal, state, PAGE_SIZE, page * PAGE_SIZE, tags=tag, name=name, owner=owner,
            top_level=not children,
        )
        return [jobs.job_public(job).model_dump(mode="json") for job in items], count


@router.get("/", response_class=HTMLResponse)
async def jobs_page(
    request: Request,
    state: Annotated[str | None, Query(max_length=16)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    owner: Annotated[str | None, Query(max_length=100)] = None,
    page: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    filters = {"state": state or "", "tag": tag or "", "name": name or "", "owner": owner or ""}
    states = [s.value for s in JobState]
    context = {"filters": filters, "states": states, "page": page, "page_size": PAGE_SIZE, "error": None}
    if state and state not in states:
        context |= {"items": [], "count": 0, "error": f"unknown state {state!r}: one of {', '.join(states)}"}
        return _render(request, "jobs.html", context, status_code=422, principal=principal)
    tags = [t.strip() for t in (tag or "").split(",") if t.strip()]
    items, count = await run_in_threadpool(_list, principal, state or None, tags, name or None, owner or None, page)
    for item in items:
        item["percent"] = view.job_percent(item)
    context |= {"items": items, "count": count}
    return _render(request, "jobs.html", context, principal=principal)


def _job_and_metrics(job_id: str, principal: Principal) -> tuple[dict, list[dict]]:
    with new_session() as session:
        job = jobs.get_job(session, job_id, principal)
        rows = [row.model_dump(mode="json") for row in jobs.metric_rows(session, job)]
        return jobs.job_public(job).model_dump(mode="json"), rows


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: str) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    try:
        job, rows = await run_in_threadpool(_job_and_metrics, job_id[:64], principal)
    except NotFound as exc:
        return _render(request, "error.html", {"message": exc.message}, status_code=404, principal=principal)
    context = view.job_view(job, get_settings().artifacts_root)
    context["metrics_json"] = json.dumps(rows).replace("<", "\\u003c")  # safe inside <script>
    return _render(request, "job.html", context, principal=principal)


def _compare(a: str, b: str, principal: Principal) -> dict:
    settings = get_settings()
    with new_session() as session:
        evaluations = []
        for field, reference in (("a", a), ("b", b)):
            try:
                job_id, index = compare.parse_reference(reference)
            except ValueError as exc:
                raise InvalidSpec(f"{field}: {exc}", field=field) from None
            try:
                job = jobs.get_job(session, job_id, principal)
            except NotFound as exc:
                raise NotFound(f"{field}: {exc.message}", field=field) from None
            evaluations.append(compare.evaluation_of(job, index, settings.artifacts_root, field))
        return compare.compare(*evaluations).model_dump(mode="json", by_alias=True)


@router.get("/ui/compare", response_class=HTMLResponse)
async def compare_page(
    request: Request,
    a: Annotated[str | None, Query(max_length=69)] = None,
    b: Annotated[str | None, Query(max_length=69)] = None,
) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    context = {"a": a or "", "b": b or "", "result": None, "error": None}
    if not a or not b:
        return _render(request, "compare.html", context, principal=principal)
    try:
        context["result"] = await run_in_threadpool(_compare, a, b, principal)
    except StagerunError as exc:
        context["error"] = exc.message
        return _render(request, "compare.html", context, status_code=exc.status_code, principal=principal)
    return _render(request, "compare.html", context, principal=principal)
