"""A stage stopped between batches (a cancel) does not record the epoch in progress as complete: no
results.csv row, last.pt stays the previous epoch's, and the resumed run trains that epoch from its start."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from ultralytics import YOLO

from client.synthetic import make_dataset
from shared.stage_kinds.training_options import TrainingOptions
from tests.worker.test_trainer_options import Recorded
from tests.worker.yolo_datasets import TINY_TRAIN
from worker.ultralytics_ext.trainer import StagerunTrainer

pytestmark = pytest.mark.slow


def epochs_in(results_csv: Path) -> list[int]:
    with results_csv.open() as handle:
        return [int(float(row["epoch"])) for row in csv.DictReader(handle)]


def test_a_cancel_between_batches_keeps_the_epoch_in_progress_unfinished(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", train=8, val=2, size=64, seed=4)
    trainer_class = StagerunTrainer.for_stage(TrainingOptions(auto_recipe=False), Recorded())
    args = {**TINY_TRAIN, "epochs": 3, "batch": 2, "data": str(data), "project": str(tmp_path), "name": "run"}
    seen = {"batches": 0}

    def stop_in_epoch_two(trainer) -> None:
        if trainer.epoch == 1:
            seen["batches"] += 1
            if seen["batches"] == 2:  # of 4
                trainer.stop = trainer.keep_resumable = trainer.partial_epoch = True

    model = YOLO("yolov8n.yaml")
    model.add_callback("on_train_batch_end", stop_in_epoch_two)
    model.train(trainer=trainer_class, **args)
    run = Path(model.trainer.save_dir)
    assert epochs_in(run / "results.csv") == [1]
    last = torch.load(run / "weights" / "last.pt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 0 and last["optimizer"] is not None  # epoch 1 complete, still resumable

    resumed = YOLO(str(run / "weights" / "last.pt"))
    resumed.train(trainer=StagerunTrainer.for_stage(TrainingOptions(auto_recipe=False), Recorded()), resume=True)
    assert epochs_in(run / "results.csv") == [1, 2, 3]  # epoch 2 trained from its start, no row twice
