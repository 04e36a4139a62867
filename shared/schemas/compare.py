"""Response schema of ``GET /v1/compare``: two evaluate stages side by side, per class, with b - a."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Change(BaseModel):
    a: float | None
    b: float | None
    delta: float | None = Field(description="b - a; null when either side is null (a class with no ground truth).")


class CountChange(BaseModel):
    a: int | None
    b: int | None
    delta: int | None = Field(description="b - a; null when either side lacks the count.")


class EvaluationRef(BaseModel):
    job_id: str
    stage_index: int
    stage_name: str | None = Field(description="The stage's name, if the pipeline gave it one.")
    dataset: str = Field(description="The job's dataset, as the job names it.")
    split: str
    weights: str | None = Field(description="The weights evaluated, relative to their root.")
    per_class_errors: bool = Field(
        description="Whether per-class error counts were found (in the stage results or its metrics.json report)."
    )


class ClassComparison(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_id: int
    name: str
    instances: int = Field(description="Ground-truth objects of the class in the split (as b counted them).")
    precision: Change
    recall: Change
    mAP50: Change
    mAP50_95: Change = Field(alias="mAP50-95")
    errors: dict[str, CountChange] | None = Field(
        description="Error counts per kind (classification, localization, both, duplicate, background, missed); "
        "null when either evaluation's per-class counts are unavailable (see notes)."
    )


class ComparePublic(BaseModel):
    a: EvaluationRef
    b: EvaluationRef
    overall: dict[str, Change] = Field(description="precision, recall, mAP50, mAP50-95 over all classes.")
    error_kinds: dict[str, CountChange] = Field(description="Error counts per kind over all classes.")
    per_class: list[ClassComparison] = Field(description="Biggest absolute mAP50 change first.")
    notes: list[str] = Field(description="What could not be compared and why (e.g. a report file that is gone).")
