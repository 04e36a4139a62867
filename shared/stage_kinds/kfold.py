"""The k-fold stage kind: the training images split into k folds stratified by the classes in each image, each
fold trained and evaluated as a child job, reported as mean and standard deviation per class
(worker/stages/kfold.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.errors import InvalidSpec
from shared.stage_kinds.base import ImageSize, Product, StageBase, StageKind, SubmitContext
from shared.stage_kinds.train import TrainStart


class KFoldStage(StageBase):
    """K-fold cross-validation of one train configuration on the job's training split."""

    type: Literal["kfold"]
    start_from: TrainStart = Field("previous", description="What every fold trains from (as a train stage's).")
    folds: int = Field(5, ge=2, le=20)
    parallel: int | None = Field(None, ge=1, le=64, description="Folds running at once; default all of them.")
    train: dict = Field(default_factory=dict, description="Every fold's train stage (epochs, imgsz, options, ...).")
    imgsz: ImageSize | None = Field(None, description="The evaluate stages' imgsz; default the train stage's.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the fold assignment.")


def check(stage: KFoldStage, context: SubmitContext) -> None:
    from pydantic import ValidationError

    from shared.stage_kinds.train import TrainStage

    where = context.field
    for reserved in ("type", "start_from", "weights", "data", "gate"):
        if reserved in stage.train and not (reserved == "type" and stage.train[reserved] == "train"):
            raise InvalidSpec(f"train.{reserved}: set it on the kfold stage, not its folds", field=f"{where}.train")
    try:
        TrainStage.model_validate({**stage.train, "type": "train"})
    except ValidationError as exc:
        problem = exc.errors()[0]
        location = ".".join(str(part) for part in problem["loc"])
        raise InvalidSpec(f"train.{location}: {problem['msg']}", field=f"{where}.train.{location}") from None
    from shared.datasets.files import split_images

    images = len(split_images(context.dataset.splits.get("train", [])))
    if images < stage.folds:
        raise InvalidSpec(f"the train split has {images} image(s), too few for {stage.folds} folds",
                          field=f"{where}.folds")
    if stage.parallel is not None and stage.parallel > stage.folds:
        stage.parallel = stage.folds


KIND = StageKind(
    type="kfold",
    spec=KFoldStage,
    summary="K-fold cross-validation: folds stratified by class, trained and evaluated as child jobs in parallel; "
    "mean and standard deviation per class.",
    inputs={"start_from": Product.WEIGHTS},
    produces=frozenset({Product.METRICS}),
    check=check,
    accepts_model_config=True,
    computes=False,
)
