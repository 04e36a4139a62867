"""A small client for stagerun's API, used by the CLI's client commands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx

from shared.auth import read_token_file
from shared.settings import get_settings


class ApiError(Exception):
    pass


def auth_headers() -> dict[str, str]:
    """``STAGERUN_TOKEN`` if set, else the local token that ``stagerun up`` wrote into the home."""
    settings = get_settings()
    token = settings.token or read_token_file(settings.token_file)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _client() -> httpx.Client:
    return httpx.Client(base_url=get_settings().api_url, timeout=30, headers=auth_headers())


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            message = error["message"]
            details = error.get("details") or []
        except (ValueError, KeyError, TypeError):
            message, details = response.text[:500], []
        lines = [f"HTTP {response.status_code}: {message}"]
        for detail in details if len(details) > 1 or (details and details[0].get("file")) else []:
            where = detail.get("file") or detail.get("field") or ""
            if detail.get("line"):
                where += f":{detail['line']}"
            lines.append(f"  {where}: {detail.get('message')}")
        raise ApiError("\n".join(lines))
    return response


def submit(spec: dict, idempotency_key: str | None = None) -> dict:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    with _client() as client:
        return _check(client.post("/v1/jobs", json=spec, headers=headers)).json()


def fetch_job(job_id: str) -> dict:
    with _client() as client:
        return _check(client.get(f"/v1/jobs/{job_id}")).json()


def resume(job_id: str) -> dict:
    with _client() as client:
        return _check(client.post(f"/v1/jobs/{job_id}/resume")).json()


def rerun(job_id: str, from_stage: int, body: dict) -> dict:
    with _client() as client:
        return _check(client.post(f"/v1/jobs/{job_id}/rerun", params={"from_stage": from_stage}, json=body or None)).json()


def list_jobs(
    state: str | None = None, tags: list[str] | None = None, name: str | None = None, owner: str | None = None,
    limit: int = 50, offset: int = 0, parent: str | None = None, top_level: bool = False,
) -> dict:
    params: dict = {"limit": limit, "offset": offset}
    if top_level:
        params["top_level"] = "true"
    for key, value in (("state", state), ("tag", tags or None), ("name", name), ("owner", owner), ("parent", parent)):
        if value is not None:
            params[key] = value
    with _client() as client:
        return _check(client.get("/v1/jobs", params=params)).json()


def fetch_search(job_id: str, stage: int | None = None) -> dict:
    params = None if stage is None else {"stage": stage}
    with _client() as client:
        return _check(client.get(f"/v1/jobs/{job_id}/search", params=params)).json()


def submit_best_trial(job_id: str, stage: int | None = None) -> dict:
    params = None if stage is None else {"stage": stage}
    with _client() as client:
        return _check(client.post(f"/v1/jobs/{job_id}/search/best", params=params)).json()


def fetch_kfold(job_id: str, stage: int | None = None) -> dict:
    params = None if stage is None else {"stage": stage}
    with _client() as client:
        return _check(client.get(f"/v1/jobs/{job_id}/kfold", params=params)).json()


def cancel(job_id: str) -> dict:
    with _client() as client:
        return _check(client.post(f"/v1/jobs/{job_id}/cancel")).json()


def delete(job_id: str, keep_artifacts: bool = False) -> None:
    params = {"keep_artifacts": "true"} if keep_artifacts else None
    with _client() as client:
        _check(client.delete(f"/v1/jobs/{job_id}", params=params))


def logs(job_id: str, stage: int | None = None, tail: int | None = None, follow: bool = False) -> Iterator[str]:
    """The job's log text as it arrives (with ``follow``, until the job ends: no read timeout)."""
    params: dict = {"follow": "true"} if follow else {}
    if stage is not None:
        params["stage"] = stage
    if tail is not None:
        params["tail"] = tail
    timeout = httpx.Timeout(30, read=None) if follow else httpx.Timeout(30)
    with _client() as client, client.stream("GET", f"/v1/jobs/{job_id}/logs", params=params, timeout=timeout) as response:
        if response.status_code >= 400:
            response.read()
            _check(response)
        yield from response.iter_text()


def compare(a: str, b: str) -> dict:
    with _client() as client:
        return _check(client.get("/v1/compare", params={"a": a, "b": b})).json()


def download(job_id: str, output: Path, artifact: str | None = None) -> Path:
    url = f"/v1/jobs/{job_id}/artifacts/{artifact}" if artifact else f"/v1/jobs/{job_id}/weights"
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".part")
    with _client() as client, client.stream("GET", url) as response:
        if response.status_code >= 400:
            response.read()
            _check(response)
        with partial.open("wb") as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
    partial.replace(output)
    return output


def register_dataset(source: str, name: str | None = None) -> tuple[dict, bool]:
    """A folder under the API's datasets root (registered in place) or a local .zip (uploaded). Returns the
    dataset and whether it is new (a folder registered again is validated again, not duplicated)."""
    path = Path(source)
    with _client() as client:
        if path.suffix.lower() == ".zip" and path.is_file():
            with path.open("rb") as handle:
                files = {"file": (path.name, handle, "application/zip")}
                response = _check(client.post("/v1/datasets", files=files, data={"name": name or path.stem}))
        else:
            body = {"path": source, **({"name": name} if name else {})}
            response = _check(client.post("/v1/datasets", json=body))
    return response.json(), response.status_code == 201


def list_datasets(limit: int = 50) -> dict:
    with _client() as client:
        return _check(client.get("/v1/datasets", params={"limit": limit})).json()


def fetch_dataset(dataset_id: str) -> dict:
    with _client() as client:
        return _check(client.get(f"/v1/datasets/{dataset_id}")).json()
