"""The API's URL space in one place: the version prefix every resource route hangs under, and the paths of the
resources that responses link to."""

from __future__ import annotations

API_V1 = "/v1"


def job_url(job_id: str, *rest: str) -> str:
    return "/".join((f"{API_V1}/jobs/{job_id}", *rest))


def dataset_url(dataset_id: str) -> str:
    return f"{API_V1}/datasets/{dataset_id}"


def preset_url(name: str) -> str:
    return f"{API_V1}/presets/{name}"
