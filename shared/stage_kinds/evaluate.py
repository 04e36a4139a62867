"""The evaluate stage kind: Ultralytics validation of some weights on one split (worker/stages/evaluate.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from shared.errors import InvalidSpec
from shared.stage_kinds.base import Gate, ImageSize, Product, StageBase, StageKind, SubmitContext, WeightsInput
from shared.stage_kinds.train import check_gate


class EvaluateStage(StageBase):
    """Ultralytics validation of the latest weights on one split: mAP50, mAP50-95, P, R per class."""

    type: Literal["evaluate"]
    weights: WeightsInput = "latest"
    split: Literal["train", "val", "test"] = "val"
    imgsz: ImageSize = 640
    batch: int = Field(16, ge=1, le=1024, strict=True)
    conf: float | None = Field(None, gt=0.0, lt=1.0)
    iou: float | None = Field(None, gt=0.0, le=1.0)
    augment: bool = Field(
        False,
        description="Test-time augmentation (Ultralytics' scales and flip). The stage then also evaluates without "
        "it and reports both side by side in results.tta (plain, tta, delta per metric and class).",
    )
    plots: bool = True
    gate: Gate | None = None

    @classmethod
    def stagerun_fields(cls) -> set[str]:
        return {"weights", "gate"}

    @field_validator("gate")
    @classmethod
    def _no_retry(cls, gate: Gate | None) -> Gate | None:
        if gate is not None and gate.on_fail == "retry":
            raise ValueError("on_fail 'retry' re-trains with stronger class weights: put the gate on the train stage")
        return gate


def check(stage: EvaluateStage, context: SubmitContext) -> None:
    if stage.split not in context.dataset.splits:
        raise InvalidSpec(f"dataset has no '{stage.split}' split to evaluate on", field=f"{context.field}.split")
    check_gate(stage.gate, context)


KIND = StageKind(
    type="evaluate",
    spec=EvaluateStage,
    summary="Validate weights on one split: per-class metrics, confusion matrix, error and localization breakdown.",
    inputs={"weights": Product.WEIGHTS},
    produces=frozenset({Product.METRICS, Product.EVALUATION}),
    check=check,
)
