"""The train stage kind: Ultralytics training through stagerun's trainer (worker/stages/train.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator

from shared.errors import InvalidSpec
from shared.stage_kinds.base import (
    OPTIMIZERS,
    STAGE_REF,
    Batch,
    DataInput,
    Fraction,
    Gain,
    Gate,
    ImageSize,
    Product,
    StageBase,
    StageKind,
    SubmitContext,
    check_batch,
)
from shared.stage_kinds.training_options import TrainingOptions, freeze_layers

TrainStart = Annotated[
    str,
    Field(
        pattern=rf"^(previous|model|{STAGE_REF})$",
        description="'previous': the weights of the latest earlier stage that produces weights (the job's model if "
        "none); 'model': the job's model; 'stage:<n>': the weights stage n produced.",
    ),
]


class TrainStage(StageBase, TrainingOptions):
    """Ultralytics training. Unset fields keep Ultralytics' defaults (ultralytics/cfg/default.yaml);
    stagerun's own options (class weights, focal loss, sampling, ...) come from ``TrainingOptions``."""

    type: Literal["train"]
    start_from: TrainStart = Field("previous", validation_alias=AliasChoices("start_from", "weights"))
    data: DataInput = "job"
    gate: Gate | None = None
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
        return {"start_from", "data", "gate", *TrainingOptions.option_fields()}

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


def check_gate(gate: Gate | None, context: SubmitContext) -> None:
    """A gate's class exists in the dataset; ``better_than_previous`` has an earlier stage to be better than."""
    from shared.class_weights import class_index

    if gate is None:
        return
    if gate.class_ is not None:
        class_index(gate.class_, context.dataset.names, f"{context.field}.gate.class")
    if gate.better_than_previous:
        from shared.stage_kinds import produces

        if not any(produces(stage.type, Product.METRICS) for stage in context.stages[: context.index]):
            raise InvalidSpec(
                "better_than_previous needs an earlier train or evaluate stage whose metrics to beat",
                field=f"{context.field}.gate.better_than_previous",
            )


def check_child_train(train: dict, where: str, kind: str, children: str) -> None:
    """A fan-out stage's ``train`` (search, k-fold): the fields of the train stage each child job runs, without
    what the fan-out stage itself decides (its input weights and data, gates)."""
    from pydantic import ValidationError

    for reserved in ("type", "start_from", "weights", "data", "gate"):
        if reserved in train and not (reserved == "type" and train[reserved] == "train"):
            raise InvalidSpec(f"train.{reserved}: set it on the {kind} stage, not its {children}", field=f"{where}.train")
    try:
        TrainStage.model_validate({**train, "type": "train"})
    except ValidationError as exc:
        problem = exc.errors()[0]
        location = ".".join(str(part) for part in problem["loc"])
        raise InvalidSpec(f"train.{location}: {problem['msg']}", field=f"{where}.train.{location}") from None


def check(stage: TrainStage, context: SubmitContext) -> None:
    from shared.class_weights import class_index
    from shared.references import model_layer_count

    for key, key_field in stage.class_keys():
        class_index(key, context.dataset.names, f"{context.field}.{key_field}")
    layers = model_layer_count(context.model)
    if isinstance(stage.freeze, str) and layers is not None:
        stage.freeze = freeze_layers(stage.freeze, layers)  # stored as the layer count it means for this model
    _check_freeze(stage.freeze, layers, f"{context.field}.freeze")
    check_gate(stage.gate, context)


def _check_freeze(freeze: int | str | list[int] | None, layers: int | None, field: str) -> None:
    """Ultralytics ignores freeze indices its model does not have; refuse them while the model's depth is known."""
    if freeze is None or layers is None or isinstance(freeze, str):
        return
    if isinstance(freeze, int):
        if freeze > layers:
            raise InvalidSpec(f"freeze {freeze} exceeds the model's {layers} layers", field=field)
        return
    for position, index in enumerate(freeze):
        if index >= layers:
            raise InvalidSpec(
                f"layer {index} does not exist: the model has layers 0..{layers - 1}", field=f"{field}.{position}"
            )


KIND = StageKind(
    type="train",
    spec=TrainStage,
    summary="Train (or fine-tune) with Ultralytics plus stagerun's options; hands on its best weights.",
    inputs={"start_from": Product.WEIGHTS, "data": Product.DATASET},
    produces=frozenset({Product.WEIGHTS, Product.METRICS}),
    check=check,
    accepts_model_config=True,
)
