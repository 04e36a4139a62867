"""stagerun's own training options (issue 4 and the thin-object work): the parts of a train stage that
Ultralytics does not have. Each is off unless set, except thin-box keeping, which is on by default."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ClassKey = Annotated[
    str,
    Field(min_length=1, max_length=100, description="A class id ('3') or a class name from the dataset's data.yaml."),
]
ClassWeight = Annotated[float, Field(gt=0.0, le=1000.0)]
WEIGHT_STRATEGIES = ("inverse", "sqrt_inverse", "effective_number")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AutoClassWeights(Options):
    """Weights computed from the training labels' instance counts, normalized so the mean weight is 1."""

    strategy: Literal[WEIGHT_STRATEGIES]  # type: ignore[valid-type]
    beta: float = Field(
        0.999, gt=0.0, lt=1.0, description="effective_number only: (1 - beta^n) / (1 - beta), Cui et al. 2019."
    )
    min_weight: float | None = Field(
        None,
        gt=0.0,
        le=100.0,
        description="Raise every weight below this to it, after normalizing to mean 1: with 1.0 rare classes weigh "
        "more and no class weighs less than in an unweighted loss.",
    )


ClassWeights = Annotated[
    dict[ClassKey, ClassWeight] | Literal[WEIGHT_STRATEGIES] | AutoClassWeights,  # type: ignore[valid-type]
    Field(
        description="Explicit weights by class id or name (unlisted classes weigh 1), or an automatic strategy: "
        "'inverse', 'sqrt_inverse', 'effective_number', or {strategy, beta}."
    ),
]


def _non_empty(weights: object) -> object:
    if isinstance(weights, dict) and not weights:
        raise ValueError("class weights must name at least one class")
    return weights


class Focal(Options):
    """Focal modulation of the classification term: (1 - p_t)^gamma, and alpha balancing when set."""

    gamma: float = Field(2.0, ge=0.0, le=10.0)
    alpha: float | None = Field(None, gt=0.0, lt=1.0, description="Weight of positives; negatives get 1 - alpha.")


class SmallObjectGain(Options):
    """A larger box and DFL loss weight for small ground-truth boxes."""

    gain: float = Field(2.0, ge=1.0, le=100.0)
    threshold: float = Field(0.001, gt=0.0, le=1.0, description="Normalized area, or width, below which a box is small.")
    measure: Literal["area", "width"] = "area"


class Sampling(Options):
    """Weighted image sampling: an image weighs as much as the heaviest class in it."""

    weights: ClassWeights = "sqrt_inverse"
    ramp_epochs: int = Field(0, ge=0, le=10_000, description="Move linearly from uniform to full weights over N epochs.")

    _weights = field_validator("weights")(_non_empty)


class CopyPasteRare(Options):
    """Paste crops of objects of the given classes into other training images (box-only datasets)."""

    classes: list[ClassKey] = Field(min_length=1, max_length=1000)
    p: float = Field(0.5, ge=0.0, le=1.0, description="Probability that an image receives pastes.")
    max_pastes: int = Field(3, ge=1, le=50, description="Most crops pasted into one image.")
    max_overlap: float = Field(0.1, ge=0.0, le=1.0, description="Most of an existing box a paste may cover (IoA).")


class ThinBoxes(Options):
    """Keep thin boxes through augmentation: clip them to at least ``min_box_px`` instead of dropping them
    (Ultralytics drops boxes 2 px or narrower and aspect ratios over 100)."""

    min_box_px: float = Field(1.0, gt=0.0, le=64.0)
    max_aspect_ratio: float = Field(1000.0, ge=1.0, le=100_000.0)


class ThinAssigner(Options):
    """Task-aligned assignment that gives thin boxes (stems, barlines, cracks: 1-3 px wide) a learning signal.

    Ultralytics' assigner aligns anchors by CIoU, whose aspect-ratio penalty drives it to 0 for a thin box
    against the square-ish boxes a model predicts (no anchor is picked); and its metric, score^0.5 x IoU^6, falls
    under the normaliser's 1e-9 eps for IoU below ~0.03, so the class target and box-loss weight stay ~0.
    Measurements behind the defaults: docs/benchmarks.md."""

    iou: Literal["ciou", "iou"] = Field(
        "iou", description="Alignment IoU: 'ciou' as Ultralytics, or 'iou', which ignores aspect ratio."
    )
    target_floor: float = Field(
        0.1, ge=0.0, le=1.0, description="Lowest class target of a positive anchor (0 = no floor)."
    )
    floor_on: Literal["all", "starved"] = Field(
        "starved",
        description="'starved': floor only the anchors of boxes whose best target would be ~0 (< 1e-3); "
        "'all': every positive anchor.",
    )


class WidenThin(Options):
    """Train on thin boxes widened along their thin side, and narrow predictions back by exactly the same
    per-class amount at predict time.

    A 1-2 px stem gives an anchor-point detector almost nothing to regress: anchors 8 px apart rarely fall
    inside it, and a half-pixel width error halves its IoU. Widened to ``target_px`` it gets anchors and a
    well-conditioned box loss; the pad (a share of the image's long side, so it holds at any imgsz) is
    stored with the weights as a plain dict that Ultralytics ignores, and stagerun's evaluate, mine and the
    trainer's own validation subtract it."""

    target_px: float = Field(
        8.0, gt=0.0, le=64.0, description="Widen a class's thin side until its median reaches this many pixels."
    )
    classes: list[ClassKey] | None = Field(
        None,
        max_length=1000,
        description="Classes to widen, by id or name; default: the classes at risk (thin side under 3 px at imgsz).",
    )
    yield_anchors: bool = Field(
        False,
        description="A widened box keeps no anchor that another box claims too (a widened stem crossing a beam "
        "leaves the beam its anchors).",
    )
    box_weight: float | Literal["balanced"] = Field(
        1.0,
        description="Weight of a widened class's box and DFL terms. A box widened from w to target_px px holds "
        "about target_px / w times as many anchors, so widening alone hands the widened classes most of the box "
        "loss (omr-bench: stems 12% of the anchors inside boxes, 43% widened); 'balanced' weighs them by "
        "w / target_px, which gives them back the share their unwidened boxes had. A number in (0, 1] weighs "
        "every widened class by it.",
    )

    box_iou: Literal["widened", "narrowed"] = Field(
        "widened",
        description="What the IoU term of a widened class compares: the widened boxes ('widened'), or both boxes "
        "narrowed back by the pad ('narrowed'), which is what evaluation scores. On a 1 px stem widened to 8 px a "
        "0.4 px shift costs 0.05 of widened IoU and 0.5 of narrowed IoU, so 'narrowed' spends the box loss on "
        "the width that decides the match rather than on the ends.",
    )

    levels: Literal["all", "finest"] = Field(
        "all",
        description="Feature levels whose anchors may learn a widened box: 'all' (Ultralytics' rule: any level whose "
        "anchors fall inside it), or 'finest' (only the finest stride, the one target_px matches; a coarser "
        "level regresses a box 8 px wide in bins of 16-32 px and shares its box branch with the large classes).",
    )

    topk: int | None = Field(
        None,
        ge=1,
        le=10,
        description="Positive anchors a widened box keeps at most (its best-aligned ones; null: all that the "
        "assigner's top-k of 10 gives it). Fewer positives per stem shrink the widened classes' share of the box "
        "loss while the anchor that survives NMS keeps its full weight, where box_weight lowers every anchor's.",
    )
    coarse_classes: list[ClassKey] | None = Field(
        None,
        max_length=1000,
        description="Classes (by id or name) whose boxes take anchors from the coarser levels only, leaving the "
        "finest level to the widened classes (combine with levels 'finest'). An anchor predicts one box: where a "
        "widened stem crosses a beam, the anchors on the stem cannot also regress the beam. A box with no "
        "coarser-level candidate keeps its finest-level ones.",
    )
    box_gradient: Literal["all", "head"] = Field(
        "all",
        description="Where a widened class's box and DFL gradients go: 'all' (the box branch and the shared "
        "backbone and neck, as in Ultralytics), or 'head' (the box branch only: the features the other classes "
        "localize with are trained by their own box losses and by every class's classification). 'head' runs "
        "the box branch a second time on detached features.",
    )

    @field_validator("box_weight")
    @classmethod
    def _box_weight_range(cls, value: float | str) -> float | str:
        if isinstance(value, float) and not 0.0 < value <= 1.0:
            raise ValueError("box_weight must be in (0, 1] or 'balanced'")
        return value


FreezeShare = Annotated[str, Field(pattern=r"^(100|[1-9]?[0-9])%$")]


def freeze_layers(share: str, layers: int) -> int:
    """'50%' of a model's ``layers`` as a layer count to freeze (rounded down): deeper models freeze more."""
    return int(layers * int(share.removesuffix("%")) / 100)


class TrainingOptions(Options):
    """Mixed into the train stage; see each model for the fields.

    With ``auto_recipe`` on (the default), options the stage does not name are chosen from the training
    labels: thin classes get the thin-aware assigner, thin-box keeping and ``widen_thin``; rare classes get
    automatic class weights and weighted sampling (``shared/recipe.py``). Naming an option, even as null,
    keeps the stage's own value."""

    auto_recipe: bool = Field(
        True,
        description="Choose the options this stage does not name from its training labels (thin or rare classes); "
        "false trains with exactly the options named.",
    )

    class_weights: ClassWeights | None = None
    class_weight_power: float | None = Field(
        None,
        gt=0.0,
        le=10.0,
        description="Raise the class weights to this power (then back to mean 1): above 1 rare classes weigh more. "
        "A gate's on_fail retry sets it.",
    )
    focal: Focal | None = None
    small_object_gain: SmallObjectGain | None = None
    sampling: Sampling | None = None
    copy_paste_rare: CopyPasteRare | None = None
    thin_boxes: ThinBoxes | None = Field(
        None,
        description="Keep thin boxes through augmentation; chosen automatically when a class is thin. "
        "null restores Ultralytics' own rule (drop boxes of 2 px or less).",
    )
    thin_assigner: ThinAssigner | None = Field(
        None, description="Thin-aware task-aligned assigner; null keeps Ultralytics' own assigner."
    )
    widen_thin: WidenThin | None = Field(
        None, description="Train on widened thin boxes, narrowed back at predict time; null trains on the labels as they are."
    )
    starvation_batches: int = Field(
        8,
        ge=0,
        le=1000,
        description="Training batches of the first and the last epoch on which the starvation report "
        "(per class: boxes with no positive anchor, boxes with a ~0 target) is measured; 0 turns it off.",
    )
    freeze: int | FreezeShare | list[Annotated[int, Field(ge=0, le=1000)]] | None = Field(
        None,
        description="Freeze the first N layers, the listed layer indices, or a share of the model's layers ('50%': "
        "turned into the layer count it means for the job's model).",
    )
    llrd: float | None = Field(
        None, gt=0.0, le=1.0, description="Layer-wise learning-rate decay: layer i of n gets lr0 * llrd^(n-1-i)."
    )

    _class_weights = field_validator("class_weights")(_non_empty)

    @field_validator("freeze", mode="before")
    @classmethod
    def _freeze_form(cls, value: object) -> object:
        """One clear error instead of one per union member."""
        if isinstance(value, str) and not re.fullmatch(r"(100|[1-9]?[0-9])%", value):
            raise ValueError(f"freeze must be a layer count, a list of layer indices or a share such as '50%', "
                             f"not {value!r}")
        return value

    @field_validator("freeze")
    @classmethod
    def _freeze_bounds(cls, value: int | list[int] | None) -> int | list[int] | None:
        if isinstance(value, int) and not 0 <= value <= 1000:
            raise ValueError("freeze must be between 0 and 1000 layers")
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError("freeze lists a layer twice")
        return value

    @classmethod
    def option_fields(cls) -> set[str]:
        """Fields stagerun implements itself (``freeze`` is Ultralytics' own and passed through)."""
        return set(TrainingOptions.model_fields) - {"freeze"}

    @classmethod
    def option_models(cls) -> dict[str, type[BaseModel]]:
        """Options that are models of their own (focal, sampling, thin_assigner, ...), by field name."""
        import typing

        models: dict[str, type[BaseModel]] = {}
        for name, info in TrainingOptions.model_fields.items():
            for candidate in (info.annotation, *typing.get_args(info.annotation)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    models[name] = candidate
        return models

    def class_keys(self) -> list[tuple[str, str]]:
        """Every class a user named, with the field that named it, for checking against the dataset."""
        keys: list[tuple[str, str]] = []

        def add(weights: object, field: str) -> None:
            if isinstance(weights, dict):
                keys.extend((key, f"{field}.{key}") for key in weights)

        add(self.class_weights, "class_weights")
        if self.sampling is not None:
            add(self.sampling.weights, "sampling.weights")
        if self.copy_paste_rare is not None:
            keys.extend((key, f"copy_paste_rare.classes.{i}") for i, key in enumerate(self.copy_paste_rare.classes))
        if self.widen_thin is not None and self.widen_thin.classes:
            keys.extend((key, f"widen_thin.classes.{i}") for i, key in enumerate(self.widen_thin.classes))
        if self.widen_thin is not None and self.widen_thin.coarse_classes:
            keys.extend((key, f"widen_thin.coarse_classes.{i}") for i, key in enumerate(self.widen_thin.coarse_classes))
        return keys

    def named_options(self) -> set[str]:
        """stagerun options the stage set itself (even to null): the automatic recipe leaves these alone."""
        return self.model_fields_set & self.option_fields()
