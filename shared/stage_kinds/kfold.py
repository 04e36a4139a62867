"""The k-fold stage kind: the training images split into k folds stratified by the classes in each image, each
fold trained and evaluated as a child job, reported as mean and standard deviation per class
(worker/stages/kfold.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.errors import InvalidSpec
from shared.stage_kinds.base import ImageSize, Product, StageBase, StageKind, SubmitContext
from shared.stage_kinds.train import TrainStart, check_child_train


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
    where = context.field
    check_child_train(stage.train, where, "kfold", "folds")
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
