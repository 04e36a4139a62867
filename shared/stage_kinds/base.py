"""What every stage kind is made of: the spec base class, the field types stages share, what stages
consume and produce, gates, and the ``StageKind`` declaration that ties a kind together.

A kind is one declaration (``KIND`` in its module here: spec, submit-time check, inputs, products) plus one
runner in worker/stages keyed to it; everything else (the spec union, the type list, chaining, which
stage's weights a job keeps) is derived from the declarations in ``shared/stage_kinds/__init__.py``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

if TYPE_CHECKING:
    from shared.datasets.data_yaml import DatasetRef
    from shared.references import ModelRef

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Gain = Annotated[float, Field(ge=0.0, le=100.0)]
Confidence = Annotated[float, Field(gt=0.0, lt=1.0)]
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

STAGE_REF = r"stage:\d{1,3}"
WeightsInput = Annotated[
    str,
    Field(
        pattern=rf"^(latest|model|{STAGE_REF})$",
        description="'latest': the weights of the latest earlier stage that produces weights (a train stage), "
        "else the job's model; 'model': the job's model; 'stage:<n>': the weights stage n produced.",
    ),
]
DataInput = Annotated[
    str,
    Field(
        pattern=rf"^(job|from_stage|{STAGE_REF})$",
        description="'job': the job's dataset; 'from_stage': the dataset the latest earlier stage produced "
        "(a mine stage's hard examples); 'stage:<n>': the dataset stage n produced.",
    ),
]


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


class Product(StrEnum):
    """What a stage hands to later stages or to users; each is stored under its key in the stage's results."""

    WEIGHTS = "weights"
    DATASET = "dataset"
    METRICS = "metrics"
    EVALUATION = "evaluation"
    """A split's full evaluation report (per-class metrics, error breakdown): what compare reads."""
    HARD_EXAMPLES = "hard_examples"
    EXPORTED_MODEL = "exported_model"

    @property
    def results_key(self) -> str:
        return {"dataset": "dataset_yaml", "hard_examples": "stats", "exported_model": "exported",
                "evaluation": "report"}.get(
            self.value, self.value
        )


GATE_METRICS = ("mAP50", "mAP50-95", "precision", "recall")


class Gate(BaseModel):
    """A check on a stage's metrics once it succeeds. Failing it ends the job ``gated`` with the reason; with
    ``on_fail: retry`` a train stage first runs once more from the same start, class weights made stronger."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    metric: Literal[GATE_METRICS] = Field(description="The metric to check.")  # type: ignore[valid-type]
    class_: str | None = Field(
        None, alias="class", min_length=1, max_length=200, description="A class name or id; overall if omitted."
    )
    min: float | None = Field(None, ge=0.0, le=1.0, description="The metric must reach at least this.")
    better_than_previous: bool = Field(
        False, description="The metric must beat the same metric of the latest earlier stage that measured it."
    )
    on_fail: Literal["stop", "retry"] = Field("stop", description="'stop': the job ends gated; 'retry': see factor.")
    factor: float = Field(
        2.0,
        gt=1.0,
        le=10.0,
        description="on_fail retry: the class weights of the retry are raised to this power (and brought back to "
        "mean 1), so rare classes weigh more; with no class weights the retry uses sqrt_inverse ones.",
    )

    @model_validator(mode="after")
    def _something_to_check(self) -> Gate:
        if self.min is None and not self.better_than_previous:
            raise ValueError("a gate needs min, better_than_previous, or both")
        return self


class StageBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100, description="A label for this stage.")

    def stored(self) -> dict:
        """The spec as stored on the stage row: unset fields left out, but a field the user set to null kept
        as null, so the worker's copy knows what was named (the automatic recipe leaves named options alone)."""
        stored = self.model_dump(mode="json", exclude_none=True, by_alias=True)
        stored.update({name: None for name in self.model_fields_set if getattr(self, name) is None})
        return stored

    def ultralytics_args(self) -> dict:
        """The arguments this stage hands to Ultralytics: the ones the user set, minus stagerun's own."""
        own = {"type", "name", "gate", *self.stagerun_fields()}
        return {k: v for k, v in self.model_dump(exclude_none=True).items() if k not in own}

    @classmethod
    def stagerun_fields(cls) -> set[str]:
        return set()


@dataclass(frozen=True)
class SubmitContext:
    """What a kind's submit-time check may look at: the job's dataset and model, the whole pipeline, and
    where in it the stage is (``field`` is its path for error messages, e.g. ``stages.2``)."""

    dataset: DatasetRef
    model: ModelRef
    stages: Sequence[StageBase]
    index: int
    field: str

    def weights_source(self, producer: int | None) -> str:
        return "the job's model" if producer is None else f"stage {producer}"


def _no_check(_stage: StageBase, _context: SubmitContext) -> None:
    return None


@dataclass(frozen=True)
class StageKind:
    """One stage kind. ``inputs`` maps the spec fields that name an input to what they consume; ``produces`` is
    what a succeeded stage of this kind hands on. ``accepts_model_config``: the kind can start from a model yaml
    (training); the others need weights. ``computes``: see the field."""

    type: str
    spec: type[StageBase]
    summary: str
    inputs: Mapping[str, Product] = field(default_factory=dict)
    produces: frozenset[Product] = frozenset()
    check: Callable[[StageBase, SubmitContext], None] = _no_check
    accepts_model_config: bool = False
    computes: bool = True
    """False for a kind that only reads the database and creates child jobs (search, k-fold): its stage process
    needs no device and never loads torch."""
