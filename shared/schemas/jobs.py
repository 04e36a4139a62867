"""Request and response schemas for jobs. Database rows are never returned directly."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.schemas.moments import UtcDateTime
from shared.schemas.pipeline import StageSpec

Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:/+-]+$")]


class PresetOverrides(BaseModel):
    """What a job may change in a preset (shared/presets/__init__.py applies them)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int | None = Field(
        None, ge=1, le=10_000, description="Total train epochs, split over the train stages in the preset's proportions."
    )
    imgsz: int | None = Field(None, ge=32, le=4096, multiple_of=32, description="Every stage's imgsz.")
    batch: int | None = Field(None, ge=1, le=1024, description="Every stage's batch.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Every train stage's seed.")
    stages: dict[str, dict] | None = Field(None, description="Fields per stage, keyed by the stage's name or index.")


class PresetRecord(BaseModel):
    name: str
    overrides: dict = Field(default_factory=dict)


class JobCreate(BaseModel):
    """A pipeline: a dataset, a starting model and ordered stages."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000, description="What the pipeline is for (free text).")
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    dataset: str = Field(
        min_length=1, max_length=1024, description="Folder under the datasets root holding data.yaml (or the yaml)."
    )
    model: str = Field(
        "yolov8n.yaml",
        min_length=1,
        max_length=1024,
        description="A model yaml name (yolov8n.yaml), a .pt under the weights, datasets or artifacts root, "
        "a bare weights name found in the weights root (yolov8n.pt), or job:<id> for that job's best weights.",
    )
    stages: list[StageSpec] = Field(
        None, min_length=1, max_length=32, description="The stages in order; or name a preset instead."
    )
    preset: str | None = Field(
        None,
        max_length=64,
        description="A shipped pipeline (GET /v1/presets) to expand into the stages; the expansion is what is stored.",
    )
    overrides: PresetOverrides | None = Field(None, description="Changes to the preset's stages (with preset only).")
    from_preset: PresetRecord | None = Field(
        None, description="Set by the expansion: the preset and overrides these stages came from (informational)."
    )

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data: object) -> object:
        from shared.presets import expand

        if isinstance(data, dict) and data.get("preset") is not None:
            return expand(data)
        return data

    @model_validator(mode="after")
    def _has_stages(self) -> JobCreate:
        if self.overrides is not None:
            raise ValueError("overrides: only a job that names a preset takes overrides")
        if not self.stages:
            raise ValueError("stages: a job needs stages, or a preset to take them from")
        return self


class RerunRequest(BaseModel):
    """What a re-run may change: the stages it runs (the ones before ``from_stage`` are reused as they ran)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    overrides: PresetOverrides | None = Field(None, description="Changes to the stages that run again.")


class Links(BaseModel):
    self: str
    metrics: str
    events: str
    artifacts: str
    weights: str
    cancel: str
    resume: str


class StagePublic(BaseModel):
    index: int
    type: str
    name: str | None
    state: str
    spec: dict
    dir: str
    epoch: int
    epochs: int | None
    latest_metrics: dict | None
    results: dict | None
    info: dict | None = Field(None, description="How the stage ran: weights used, recovery steps, reports.")
    error: str | None
    attempt: int
    worker_id: str | None
    queued_at: UtcDateTime | None
    started_at: UtcDateTime | None
    finished_at: UtcDateTime | None
    duration_s: float | None
    eta_s: float | None


class ParentRef(BaseModel):
    """Where a child job comes from: trial or fold ``index`` of stage ``stage_index`` of job ``job_id``."""

    job_id: str
    stage_index: int
    index: int


class JobPublic(BaseModel):
    id: str
    name: str
    tags: list[str]
    state: str
    dataset: str
    model: str
    owner: str | None = Field(None, description="Owner of the token that submitted the job.")
    created_at: UtcDateTime
    started_at: UtcDateTime | None
    finished_at: UtcDateTime | None
    duration_s: float | None
    cancel_requested: bool
    error: str | None
    current_stage: int | None = Field(description="Index of the stage running now, or next to run.")
    progress: str = Field(description="Human summary, e.g. 'stage 1/2 train: epoch 3/10'.")
    best_weights: str | None
    parent: ParentRef | None = Field(None, description="Set on a search trial or a k-fold fold: its parent job.")
    stages: list[StagePublic]
    links: Links


class JobsPublic(BaseModel):
    items: list[JobPublic]
    count: int
    limit: int
    offset: int


class MetricRowPublic(BaseModel):
    stage_index: int
    stage_type: str
    epoch: int
    values: dict
    created_at: UtcDateTime


class MetricsPublic(BaseModel):
    job_id: str
    rows: list[MetricRowPublic]


class ArtifactPublic(BaseModel):
    path: str
    size: int
    url: str


class ArtifactsPublic(BaseModel):
    job_id: str
    items: list[ArtifactPublic]
    total_size: int
