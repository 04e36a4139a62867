"""Pipeline specs: what a client may ask each stage to do, validated before anything is queued.

A stage spec is one member of a discriminated union on ``type``; adding a stage type means adding
a model here and a runner in ``worker/stages``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, WithJsonSchema, field_validator

from shared.schemas.training import TrainingOptions

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Gain = Annotated[float, Field(ge=0.0, le=100.0)]
ImageSize = Annotated[int, Field(ge=32, le=4096, multiple_of=32, description="Square image size, a multiple of 32.")]
Batch = Annotated[
    int | float | Literal["auto"],
    # one number type and a one-value string enum: what generated clients parse (openapi-python-client
    # 0.29 emits code that refuses every number for int | float | const)
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string", "enum": ["auto"]}]}),
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

    def stored(self) -> dict:
        """The spec as stored on the stage row: unset fields left out, but a field the user set to null kept
        as null, so the worker's copy knows what was named (the automatic recipe leaves named options alone)."""
        stored = self.model_dump(mode="json", exclude_none=True)
        stored.update({name: None for name in self.model_fields_set if getattr(self, name) is None})
        return stored

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
    data: Literal["job", "from_stage"] = Field(
        "job",
        description="'job': the job's dataset; 'from_stage': the hard-example dataset of the latest earlier mine stage.",
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
    cls_gain: Gain | None = Field(
        None,
        validation_alias=AliasChoices("cls_gain", "cls"),
        description="Ultralytics' 'cls' loss gain (also accepted as 'cls'; named so because generated clients "
        "cannot have a field called cls).",
    )
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
    cache: Literal["ram", "disk"] | bool | None = Field(None, description="Cache images: 'ram', 'disk', true (ram) or false.")
    amp: bool | None = None
    workers: int | None = Field(None, ge=0, le=64)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    deterministic: bool | None = None
    fraction: float | None = Field(None, gt=0.0, le=1.0, description="Share of the training set to use.")
    val: bool | None = Field(None, description="Validate every epoch (the final epoch is always validated).")
    plots: bool | None = None

    @classmethod
    def stagerun_fields(cls) -> set[str]:
        return {"start_from", "data", *TrainingOptions.option_fields()}

    def ultralytics_args(self) -> dict:
        args = super().ultralytics_args()
        if "cls_gain" in args:
            args["cls"] = args.pop("cls_gain")
        return args

    _batch = field_validator("batch", mode="before")(check_batch)

    @field_validator("cache", mode="before")
    @classmethod
    def _cache_choice(cls, value: object) -> object:
        """One clear error instead of one per union member."""
        if value is None or value in ("ram", "disk") or isinstance(value, bool):
            return value
        raise ValueError(f"cache must be 'ram', 'disk', true or false, not {value!r}")

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


Confidence = Annotated[float, Field(gt=0.0, lt=1.0)]


class MineStage(StageBase):
    """Hard-example mining: one inference pass over a split, every object matched and given a kind
    (matched, false negative, low confidence, misclassification, hard negative, duplicate, ...),
    per-class hard-image lists, previews, an error breakdown, and a hard-example dataset that a
    following train stage can use with ``data: from_stage``."""

    type: Literal["mine"]
    weights: Literal["latest", "model"] = Field(
        "latest", description="'latest': best weights of the latest earlier train stage; 'model': the job's model."
    )
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


StageSpec = Annotated[TrainStage | EvaluateStage | MineStage, Field(discriminator="type")]
STAGE_TYPES = ("train", "evaluate", "mine")
