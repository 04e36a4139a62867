"""A search stage's space: which train-stage fields a trial may vary, each as a range or a list of choices, and how
a trial's values become a train stage. Pure functions; Optuna's distributions are built in worker/stages/search.py.

A parameter is a train-stage field (``lr0``, ``box``, ``cls_gain``, ``class_weight_power``) or a field of one of
stagerun's training options, dotted (``focal.gamma``, ``thin_assigner.target_floor``, ``sampling.weights``,
``copy_paste_rare.p``). Friendly aliases name the common ones. Varying an option's field turns that option on
for the trial (its other fields at their defaults or as the base train spec sets them).

Every range is checked at submit by building the train stage at both ends and at every choice (the other
parameters at their first value), so a range the train stage would refuse (``lr0`` without a named optimizer,
``momentum`` of 1) is a 422 naming the parameter. A combination the check could not foresee (``lr0`` beside an
optimizer choice of 'auto') fails that one trial with the reason, not the search."""

from __future__ import annotations

import copy
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.errors import InvalidSpec

ALIASES = {
    "cls": "cls_gain",
    "class_weight_strength": "class_weight_power",
    "focal_gamma": "focal.gamma",
    "sampling_strength": "sampling.weights",
    "sampling_weights": "sampling.weights",
    "thin_assigner_floor": "thin_assigner.target_floor",
    "thin_assigner_iou": "thin_assigner.iou",
}
NOT_SEARCHABLE = frozenset(
    {"type", "name", "gate", "start_from", "data", "epochs", "imgsz", "batch", "device", "cache", "workers", "plots",
     "val", "seed", "deterministic", "fraction", "auto_recipe"}
)
"""Fields that define the protocol (what every trial shares) or how it runs, not what a search should tune."""

Choice = str | int | float | bool | None


class SearchParam(BaseModel):
    """A range (``low``/``high``, optionally ``log``, ``step`` or ``int``) or a list of ``choices``."""

    model_config = ConfigDict(extra="forbid")

    low: float | None = None
    high: float | None = None
    log: bool = Field(False, description="Sample on a log scale (low > 0).")
    step: float | None = Field(None, gt=0.0, description="Only multiples of step above low.")
    int_: bool = Field(False, alias="int", description="Integer values.")
    choices: Annotated[list[Choice], Field(min_length=1, max_length=64)] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchParam:
        ranged = self.low is not None or self.high is not None
        if self.choices is not None:
            if ranged or self.log or self.step is not None or self.int_:
                raise ValueError("give either choices or a range (low, high), not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs both low and high (or give choices)")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("a log range cannot have a step")
        if self.int_ and (not float(self.low).is_integer() or not float(self.high).is_integer()):
            raise ValueError("an int range needs whole low and high")
        return self

    def probes(self) -> list[Choice]:
        """The values a submit-time check builds the train stage with: both ends, or every choice."""
        if self.choices is not None:
            return list(self.choices)
        if self.int_:
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


def canonical(name: str) -> str:
    return ALIASES.get(name, name)


def set_param(spec: dict, name: str, value: Choice) -> None:
    """Put one trial value into a train-stage dict (in place). ``sampling.weights: "none"`` turns sampling off."""
    path = canonical(name).split(".")
    if len(path) == 1:
        spec[path[0]] = value
        return
    option, field = path
    if option == "sampling" and field == "weights" and value in ("none", None):
        spec["sampling"] = None
        return
    current = spec.get(option)
    spec[option] = {**(current if isinstance(current, dict) else {}), field: value}


def trial_train_spec(base: dict, params: dict[str, Choice]) -> dict:
    """The train stage a trial runs: the search's base train fields with the trial's values set."""
    spec = copy.deepcopy(base)
    spec["type"] = "train"
    for name, value in params.items():
        set_param(spec, name, value)
    return spec


def _check_name(name: str, train_fields: dict, option_models: dict, where: str) -> None:
    path = canonical(name).split(".")
    head = path[0]
    if len(path) > 2 or head not in train_fields or head in NOT_SEARCHABLE:
        searchable = sorted(f for f in train_fields if f not in NOT_SEARCHABLE and f not in option_models)
        raise InvalidSpec(
            f"{name!r} is not a searchable parameter; use a train field ({', '.join(searchable[:12])}, ...), an "
            f"option field such as focal.gamma or thin_assigner.target_floor, or one of {', '.join(sorted(ALIASES))}",
            field=where,
        )
    if len(path) == 2:
        model = option_models.get(head)
        if model is None or path[1] not in model.model_fields:
            fields = ", ".join(sorted(model.model_fields)) if model is not None else "none"
            raise InvalidSpec(f"{name!r}: {head} has no field {path[1]!r} (its fields: {fields})", field=where)
    elif head in option_models and head != "sampling":
        raise InvalidSpec(
            f"{name!r} is an option with fields; search one of them, e.g. {head}.{next(iter(option_models[head].model_fields))}",
            field=where,
        )


def check_space(space: dict[str, SearchParam], base: dict, field: str) -> None:
    """Refuse a space any of whose probes the train stage would refuse, naming the parameter and the value."""
    from shared.stage_kinds.train import TrainStage
    from shared.stage_kinds.training_options import TrainingOptions

    if not space:
        raise InvalidSpec("a search needs at least one parameter in its space", field=f"{field}.space")
    train_fields = TrainStage.model_fields
    option_models = TrainingOptions.option_models()
    seen: dict[str, str] = {}
    firsts = {name: param.probes()[0] for name, param in space.items()}
    for name, param in space.items():
        where = f"{field}.space.{name}"
        _check_name(name, train_fields, option_models, where)
        target = canonical(name)
        if target in seen:
            raise InvalidSpec(f"{name!r} and {seen[target]!r} name the same parameter", field=where)
        seen[target] = name
        for value in param.probes():
            try:
                TrainStage.model_validate(trial_train_spec(base, {**firsts, name: value}))
            except ValidationError as exc:
                problem = exc.errors()[0]
                raise InvalidSpec(
                    f"{name} = {value!r} is not a valid train stage: {problem['msg']}", field=where
                ) from None
