"""Response schemas of the fan-out stages' routes (api/routes/searches.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Objective(BaseModel):
    metric: str
    class_: str | None = Field(None, alias="class")
    split: str
    direction: str

    model_config = {"populate_by_name": True}


class TrialPublic(BaseModel):
    number: int
    state: str = Field(description="RUNNING, COMPLETE, PRUNED or FAIL (Optuna's trial states).")
    value: float | None
    params: dict
    job_id: str | None
    job_state: str | None
    epochs: int | None = Field(description="Epochs its train stage completed.")
    pruned_at_epoch: int | None
    error: str | None
    intermediate: dict[str, float] = Field(description="Epoch -> the metric it reported to the pruner.")
    from_job: str | None = Field(None, description="Set on a trial carried over from that job's search (continue_from).")


class BestTrial(BaseModel):
    number: int
    value: float
    params: dict
    job_id: str | None


class SearchPublic(BaseModel):
    job_id: str
    stage_index: int
    state: str
    objective: Objective
    trials_planned: int
    parallel: int
    trials: list[TrialPublic]
    best: BestTrial | None
    importance: dict[str, float] | None = Field(description="Parameter -> share of the objective's variance.")


class FoldPublic(BaseModel):
    fold: int
    job_id: str
    state: str
    overall: dict | None


class KFoldPublic(BaseModel):
    job_id: str
    stage_index: int
    state: str
    k: int
    folds: list[FoldPublic]
    summary: dict | None = Field(description="Per metric, overall and per class: mean, std, min, max, folds.")
