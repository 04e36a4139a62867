"""The search stage kind: an Optuna study whose trials are child jobs (a train stage and an evaluate stage each),
fanned out over the workers and pruned by their per-epoch metrics (worker/stages/search.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.errors import InvalidSpec
from shared.search_space import SearchParam, check_space
from shared.stage_kinds.base import GATE_METRICS, ImageSize, Product, StageBase, StageKind, SubmitContext
from shared.stage_kinds.train import TrainStart, check_child_train

EPOCH_METRIC_KEYS = {
    "mAP50": "metrics/mAP50(B)",
    "mAP50-95": "metrics/mAP50-95(B)",
    "precision": "metrics/precision(B)",
    "recall": "metrics/recall(B)",
}
"""The results.csv column a trial reports to the pruner after each epoch, for each objective metric."""


class SearchStage(StageBase):
    """Hyperparameter search: ``trials`` train + evaluate child jobs, ``parallel`` at a time, each with values
    the sampler picks from ``space``; the best trial's weights and metrics become this stage's."""

    type: Literal["search"]
    start_from: TrainStart = Field("previous", description="What every trial trains from (as a train stage's).")
    trials: int = Field(10, ge=1, le=1000, description="Trials in all (a resumed search keeps the ones it ran).")
    parallel: int = Field(2, ge=1, le=64, description="Trials running at once: one per free worker.")
    space: dict[str, SearchParam] = Field(
        description="Parameter -> range or choices: train fields (lr0, momentum, weight_decay, box, cls_gain, ...), "
        "option fields (focal.gamma, sampling.weights, thin_assigner.target_floor, class_weight_power, ...).",
        min_length=1,
        max_length=32,
    )
    train: dict = Field(
        default_factory=dict,
        description="What every trial's train stage shares (epochs, imgsz, batch, seed, options), as a train stage.",
    )
    metric: Literal[GATE_METRICS] = Field("mAP50-95", description="What the trials maximize.")  # type: ignore[valid-type]
    class_: str | None = Field(
        None, alias="class", min_length=1, max_length=200, description="Maximize one class's metric (name or id)."
    )
    split: Literal["train", "val", "test"] = Field("val", description="The split each trial's evaluate stage uses.")
    imgsz: ImageSize | None = Field(None, description="The evaluate stages' imgsz; default the train stage's.")
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "none"] = Field(
        "median", description="Stop a trial whose per-epoch metric is below the median of earlier trials' at that epoch."
    )
    pruner_startup_trials: int = Field(5, ge=0, le=1000, description="Trials that finish before any is pruned.")
    pruner_warmup_epochs: int = Field(1, ge=0, le=10_000, description="Epochs a trial runs before it can be pruned.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="The sampler's seed.")
    continue_from: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{32}(:\d{1,3})?$",
        description="Extend an earlier search: '<job id>' or '<job id>:<stage index>'. Its completed and pruned "
        "trials join this study before the first new one (the sampler learns from them, the best may be one of "
        "them); ``trials`` more are run. Same parameters and objective.",
    )

    def train_base(self) -> dict:
        return {"type": "train", **self.train}


def check(stage: SearchStage, context: SubmitContext) -> None:
    from shared.class_weights import class_index

    where = context.field
    check_child_train(stage.train, where, "search", "trials")
    check_space(stage.space, stage.train_base(), where)
    if stage.class_ is not None:
        class_index(stage.class_, context.dataset.names, f"{where}.class")
    if stage.split not in context.dataset.splits:
        raise InvalidSpec(f"dataset has no '{stage.split}' split for the trials to be evaluated on",
                          field=f"{where}.split")
    if stage.parallel > stage.trials:
        stage.parallel = stage.trials


KIND = StageKind(
    type="search",
    spec=SearchStage,
    summary="Hyperparameter search (Optuna): trials as train + evaluate child jobs in parallel, median-pruned; "
    "hands on the best trial's weights.",
    inputs={"start_from": Product.WEIGHTS},
    produces=frozenset({Product.WEIGHTS, Product.METRICS}),
    check=check,
    accepts_model_config=True,
    computes=False,
)
