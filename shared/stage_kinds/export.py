"""The export stage kind: the weights as an ONNX model, checked against PyTorch with onnxruntime
(worker/stages/export.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.errors import InvalidSpec
from shared.stage_kinds.base import ImageSize, Product, StageBase, StageKind, SubmitContext, WeightsInput


class ExportStage(StageBase):
    """Export weights (by default the latest train stage's best) to ONNX, then run the exported model with
    onnxruntime beside the PyTorch model on ``check_images`` images of ``split``: the largest box and score
    differences and both models' mAP50 are recorded, and the stage fails above the tolerances."""

    type: Literal["export"]
    weights: WeightsInput = "latest"
    format: Literal["onnx"] = "onnx"
    imgsz: ImageSize = 640
    opset: int | None = Field(None, ge=11, le=22, description="ONNX opset; Ultralytics picks the newest it supports.")
    dynamic: bool = Field(False, description="Dynamic batch and image size axes.")
    half: bool = Field(False, description="FP16 weights; needs a CUDA device (the stage fails on CPU).")
    simplify: bool = Field(True, description="Simplify the graph with onnxslim.")
    split: Literal["train", "val", "test"] = Field("val", description="Images the check runs on.")
    check_images: int = Field(16, ge=1, le=10_000, description="How many images the check runs both models on.")
    box_tolerance_px: float = Field(
        0.5, gt=0.0, le=100.0, description="Largest allowed box coordinate difference, pixels at imgsz."
    )
    score_tolerance: float = Field(0.01, gt=0.0, le=1.0, description="Largest allowed class score difference.")
    map50_tolerance: float = Field(0.01, ge=0.0, le=1.0, description="Largest allowed mAP50 difference.")
    batch: int = Field(16, ge=1, le=1024, strict=True, description="Batch of the mAP50 check.")

    @classmethod
    def stagerun_fields(cls) -> set[str]:
        return set(cls.model_fields) - {"format", "imgsz", "opset", "dynamic", "half", "simplify"}


def check(stage: ExportStage, context: SubmitContext) -> None:
    if stage.split not in context.dataset.splits:
        raise InvalidSpec(f"dataset has no '{stage.split}' split to check the export on", field=f"{context.field}.split")


KIND = StageKind(
    type="export",
    spec=ExportStage,
    summary="Export weights to ONNX and check the exported model against PyTorch with onnxruntime.",
    inputs={"weights": Product.WEIGHTS},
    produces=frozenset({Product.EXPORTED_MODEL}),
    check=check,
)
