"""Pipeline specs: what a client may ask each stage to do, validated before anything is queued.

A stage spec is one member of a discriminated union on ``type``; adding a stage type means adding
a model here and a runner in ``worker/stages``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from shared.schemas.training import TrainingOptions

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Gain = Annotated[float, Field(ge=0.0, le=100.0)]
ImageSize = Annotated[int, Field(ge=32, le=4096, multiple_of=32, description="Square image size, a multiple of 32.")]
Batch = Annotated[
    int | float | Literal["auto"],
    Field(
        description="Images per batch (1-1024), -1 for Ultralytics AutoBatch, a GPU-memory fraction in (0, 1), "
        "or 'auto': batch, imgsz ceiling and model size from the GPU tier of the free VRAM (train only)."
    ),
]

OPTIMIZERS = ("auto", "SGD", "MuSGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSProp")


def check_batch(batch: object) -> object:
    if batch == "auto":
        return batch
    if isinstance(batch, bool) or not isinstance(batch, int | float):
        raise ValueError("batch must be a number or 'auto'")
    if isinstance(batch, int) or float(batch).is_integer():
        if int(batch) == -1 or 1 <= int(batch) <= 1024:
            return int(batch)
        raise ValueError("batch must be -1 (auto) or between 1 and 1024")
    if not 0.0 < batch < 1.0:
        raise ValueError("a fractional batch must be between 0 and 1 (share of GPU memory)")
    return batch


class StageBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100, description="A label for this stage.")

    def ultralytics_args(self) -> dict:
        """The arguments this stage hands to Ultralytics: the ones the user set, minus stagerun's own."""
        own = {"type", "name", *self.stagerun_fields()}
        return {k: v for k, v in self.model_dump(exclude_none=True).items() if k not in own}

    @classmethod
    def stagerun_fields(cls) -> set[str]:
        return set()


class TrainStage(StageBase, TrainingOptions):
    """Ultralytics training. Unset fields keep Ultralytics' defaults (ultralytics/cfg/default.yaml);
    stagerun's own options (class weights, focal loss, sampling, ...) come from ``TrainingOptions``."""

    type: Literal["train"]
    start_from: Literal["previous", "model"] = Field(
        "previous",
        description="'previous': the best weights of the latest earlier train stage (the job's model if none); "
        "'model': the job's model.",
    )
    epochs: int = Field(10, ge=1, le=10_000)
    batch: Batch = 16
    imgsz: ImageSize = 640
    patience: int | None = Field(None, ge=0, le=10_000, description="Early stopping: epochs without improvement.")
    optimizer: Literal[OPTIMIZERS] | None = None  # type: ignore[valid-type]
    lr0: float | None = Field(None, gt=0.0, le=1.0)
    lrf: float | None = Field(None, gt=0.0, le=1.0)
    momentum: float | None = Field(None, ge=0.0, lt=1.0)
    weight_decay: float | None = Field(None, ge=0.0, le=0.1)
    warmup_epochs: float | None = Field(None, ge=0.0, le=100.0)
    warmup_momentum: float | None = Field(None, ge=0.0, lt=1.0)
    warmup_bias_lr: float | None = Field(None, ge=0.0, le=1.0)
    cos_lr: bool | None = None
    box: Gain | None = None
    cls: Gain | None = None
    dfl: Gain | None = None
    cls_pw: float | None = Field(None, ge=0.0, le=1.0, description="Ultralytics' inverse-frequency class weight power.")
    hsv_h: Fraction | None = None
    hsv_s: Fraction | None = None
    hsv_v: Fraction | None = None
    degrees: float | None = Field(None, ge=-180.0, le=180.0)
    translate: Fraction | None = None
    scale: float | None = Field(None, ge=0.0, le=0.95)
    shear: float | None = Field(None, ge=-180.0, le=180.0)
    perspective: float | None = Field(None, ge=0.0, le=0.001)
    flipud: Fraction | None = None
    fliplr: Fraction | None = None
    mosaic: Fraction | None = None
    mixup: Fraction | None = None
    close_mosaic: int | None = Field(None, ge=0, le=10_000)
    cache: Literal["ram", "disk", True, False] | None = None
    amp: bool | None = None
    workers: int | None = Field(None, ge=0, le=64)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    deterministic: bool | None = None
    fraction: float | None = Field(None, gt=0.0, le=1.0, description="Share of the training set to use.")
    val: bool | None = Field(None, description="Validate every epoch (the final epoch is always validated).")
    plots: bool | None = None

    @classmethod
    def stagerun_fields(cls) -> set[str]:
        return {"start_from", *TrainingOptions.option_fields()}

    _batch = field_validator("batch", mode="before")(check_batch)

    @field_validator("lr0", "momentum")
    @classmethod
    def _needs_named_optimizer(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("optimizer") in (None, "auto"):
            raise ValueError(
                f"optimizer 'auto' ignores {info.field_name} (Ultralytics picks its own); "
                "name an optimizer such as 'SGD' or 'AdamW' to set it"
            )
        return value

    @field_validator("close_mosaic")
    @classmethod
    def _close_mosaic_within_epochs(cls, value: int | None, info: ValidationInfo) -> int | None:
        epochs = info.data.get("epochs")
        if value is not None and epochs is not None and value > epochs:
            raise ValueError(f"close_mosaic ({value}) exceeds epochs ({epochs})")
        return value


class EvaluateStage(StageBase):
    """Ultralytics validation of the latest weights on one split: mAP50, mAP50-95, P, R per class."""

    type: Literal["evaluate"]
    weights: Literal["latest", "model"] = Field(
        "latest", description="'latest': best weights of the latest earlier train stage; 'model': the job's model."
    )
    split: Literal["train", "val", "test"] = "val"
    imgsz: ImageSize = 640
    batch: int = Field(16, ge=1, le=1024, strict=True)
    conf: float | None = Field(None, gt=0.0, lt=1.0)
    iou: float | None = Field(None, gt=0.0, le=1.0)
    augment: bool = Field(False, description="Test-time augmentation.")
    plots: bool = True

    @classmethod
    def stagerun_fields(cls) -> set[str]:
        return {"weights"}


StageSpec = Annotated[TrainStage | EvaluateStage, Field(discriminator="type")]
STAGE_TYPES = ("train", "evaluate")
