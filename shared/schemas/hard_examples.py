"""Response schema of ``GET /v1/jobs/{id}/stages/{n}/hard-examples``."""

from __future__ import annotations

from pydantic import BaseModel


class HardImagePublic(BaseModel):
    rank: int
    image: str
    difficulty: float
    kinds: dict[str, int]
    preview_url: str


class HardExamplesPublic(BaseModel):
    job_id: str
    stage_index: int
    split: str
    images: int
    hard_images: int
    kinds: dict[str, int]
    per_class: list[dict]
    error_breakdown: dict | None
    dataset: dict[str, int]
    top: list[HardImagePublic]
    stats_url: str
    detailed_url: str
    hard_example_lists: dict[str, str]
    dataset_yaml_url: str
