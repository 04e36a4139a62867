"""The mine stage kind: hard-example mining over a split (worker/stages/mine.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from shared.stage_kinds.base import Confidence, ImageSize, Product, StageBase, StageKind, SubmitContext, WeightsInput


class MineStage(StageBase):
    """Hard-example mining: one inference pass over a split, every object matched and given a kind
    (matched, false negative, low confidence, misclassification, hard negative, duplicate, ...),
    per-class hard-image lists, previews, an error breakdown, and a hard-example dataset that a
    following train stage can use with ``data: from_stage``."""

    type: Literal["mine"]
    weights: WeightsInput = "latest"
    split: Literal["train", "val"] = Field(
        "train", description="Split to mine. Mining 'val' puts validation images into the hard-example dataset."
    )
    conf: Confidence = Field(0.5, description="A prediction at or above this confidence is a detection.")
    iou: float = Field(0.5, gt=0.0, lt=1.0, description="IoU at which a detection matches a ground truth.")
    low_conf: Confidence = Field(0.3, description="Low-confidence difficulty is 1.0 + (low_conf - confidence).")
    min_conf: Confidence = Field(
        0.1, description="A same-class prediction between min_conf and conf makes a low-confidence detection."
    )
    hard_negative_conf: Confidence = Field(
        0.5, description="A detection at or above this confidence overlapping no ground truth is a hard negative."
    )
    min_difficulty: float = Field(1.5, ge=0.0, le=1000.0, description="Images below this difficulty are not hard.")
    difficulty_reduction: Literal["sum", "max"] = Field("sum", description="An image's difficulty from its objects'.")
    classes: list[int | str] | None = Field(
        None, min_length=1, max_length=1000, description="Mine only these classes (ids or names)."
    )
    max_images: int | None = Field(None, ge=1, le=10_000_000, description="Mine at most this many images of the split.")
    replay: float = Field(
        0.2, ge=0.0, le=0.9, description="Share of the hard-example dataset made of ordinary training images."
    )
    preview: int = Field(16, ge=0, le=200, description="How many of the hardest images to draw.")
    augment: bool = Field(
        False,
        description="Mine with test-time augmentation (Ultralytics' scales and flip). The stage also mines without "
        "it and reports both side by side in results.tta (kind counts and hard images).",
    )
    imgsz: ImageSize = 640
    batch: int = Field(16, ge=1, le=1024, strict=True)

    @classmethod
    def stagerun_fields(cls) -> set[str]:
        return set(cls.model_fields) - {"imgsz", "batch"}

    @field_validator("low_conf", "min_conf")
    @classmethod
    def _not_above_conf(cls, value: float, info: ValidationInfo) -> float:
        conf = info.data.get("conf")
        if conf is not None and value > conf:
            raise ValueError(f"{info.field_name} ({value}) must not exceed conf ({conf})")
        return value

    @field_validator("classes")
    @classmethod
    def _distinct_classes(cls, value: list[int | str] | None) -> list[int | str] | None:
        if value is not None and len({str(c) for c in value}) != len(value):
            raise ValueError("classes lists a class twice")
        return value


def check(stage: MineStage, context: SubmitContext) -> None:
    from shared.class_weights import class_indices

    if stage.classes is not None:
        class_indices(stage.classes, context.dataset.names, f"{context.field}.classes")


KIND = StageKind(
    type="mine",
    spec=MineStage,
    summary="Mine hard examples: per-class hard-image lists, previews, an error breakdown and a hard-example dataset.",
    inputs={"weights": Product.WEIGHTS},
    produces=frozenset({Product.DATASET, Product.HARD_EXAMPLES}),
    check=check,
)
