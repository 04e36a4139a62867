"""Real (tiny) Ultralytics trainings through StagerunTrainer's data hooks: with every data option off the
dataset, sampler and training are Ultralytics' own; with them on, the weighted sampler drives the real
loader epoch by epoch (ramp, close_mosaic, out-of-memory rebuild), and what was used is recorded."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from torch.utils.data import RandomSampler
from ultralytics import YOLO
from ultralytics.data.augment import RandomPerspective
from ultralytics.data.build import _RepeatSampler
from ultralytics.data.dataset import YOLODataset
from ultralytics.models.yolo.detect import DetectionTrainer

from client.synthetic import make_dataset
from shared.stage_kinds.training_options import TrainingOptions
from tests.worker.yolo_datasets import TINY_TRAIN
from worker.ultralytics_ext.dataset import StagerunDataset, contains
from worker.ultralytics_ext.sampling import WeightedEpochSampler
from worker.ultralytics_ext.thin_boxes import CountingPerspective, ThinBoxPerspective
from worker.ultralytics_ext.trainer import StagerunTrainer

pytestmark = pytest.mark.slow

TINY = {**TINY_TRAIN, "val": False}
DATA_TOPICS = {"sampling", "boxes_removed_by_augmentation", "boxes_kept_by_augmentation", "copy_paste_rare"}


class Recorded:
    """Collects what a trainer records, where a stage's reporter would write it to stage.info."""

    def __init__(self) -> None:
        self.info: dict = {}

    def record(self, topic: str, value: object) -> None:
        self.info[topic] = value


class Watched(StagerunTrainer):
    """Notes the images of every batch per epoch and every sampler built; can fail once with OOM."""

    fail_first_batch = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: dict[int, list[str]] = {}
        self.samplers: list[WeightedEpochSampler] = []

    def get_dataloader(self, *args, **kwargs):
        loader = super().get_dataloader(*args, **kwargs)
        if isinstance(loader.sampler, WeightedEpochSampler):
            self.samplers.append(loader.sampler)
        return loader

    def preprocess_batch(self, batch: dict) -> dict:
        if self.fail_first_batch:
            type(self).fail_first_batch = False
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")  # what Ultralytics recovers from
        self.seen.setdefault(self.epoch, []).extend(batch["im_file"])
        return super().preprocess_batch(batch)


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny"), train=12, val=4, size=64, seed=1)


def train(data_yaml: Path, out: Path, name: str, trainer: type, **args):
    yolo = YOLO("yolov8n.yaml")
    yolo.train(trainer=trainer, data=str(data_yaml), project=str(out), name=name, exist_ok=True, **{**TINY, **args})
    return yolo.trainer


def results_rows(trainer) -> list[dict]:
    with (Path(trainer.save_dir) / "results.csv").open() as handle:
        return [{k: float(v) for k, v in row.items() if k != "time"} for row in csv.DictReader(handle)]


def test_data_options_off_keep_ultralytics_dataset_loader_and_training(data_yaml: Path, tmp_path: Path) -> None:
    plain = train(data_yaml, tmp_path, "plain", DetectionTrainer, epochs=1)
    options = TrainingOptions(auto_recipe=False, thin_boxes=None, sampling=None, copy_paste_rare=None)
    ours = train(data_yaml, tmp_path, "ours", StagerunTrainer.for_stage(options, Recorded()), epochs=1)
    loader = ours.train_loader
    assert type(loader.dataset) is YOLODataset
    assert type(loader.sampler) is RandomSampler and type(loader.batch_sampler) is _RepeatSampler
    assert contains(loader.dataset.transforms, RandomPerspective)
    assert not contains(loader.dataset.transforms, CountingPerspective)
    assert results_rows(ours) == results_rows(plain)
    assert not set(ours.reporter.info) & DATA_TOPICS


def test_weighted_sampling_copy_paste_and_thin_boxes_in_a_real_training(data_yaml: Path, tmp_path: Path) -> None:
    options = TrainingOptions(
        sampling={"weights": {"bar": 6.0}, "ramp_epochs": 1}, copy_paste_rare={"classes": ["bar"], "p": 1.0}
    )
    trainer_class = Watched.for_stage(options, Recorded())
    ours = train(data_yaml, tmp_path, "data", trainer_class, epochs=3, close_mosaic=1)
    dataset, sampler = ours.train_loader.dataset, ours.train_loader.sampler
    assert type(dataset) is StagerunDataset and contains(dataset.transforms, ThinBoxPerspective)
    assert ours.samplers == [sampler] and sampler.epoch == 2
    for epoch in range(3):  # epoch 0 uniform, then full weights; epoch 2 runs after close_mosaic's reset
        assert ours.seen[epoch] == [dataset.im_files[i] for i in sampler.draw(epoch)], epoch
    assert sampler.weights_for(0).tolist() == [1.0] * 12

    info = ours.reporter.info
    assert info["sampling"]["class_weights"] == {"square": 1.0, "disc": 1.0, "bar": 6.0}
    assert info["sampling"]["draw_share"]["bar"] > info["sampling"]["draw_share_uniform"]["bar"]
    assert set(info["boxes_removed_by_augmentation"]) == {"square", "disc", "bar"}
    assert info["boxes_kept_by_augmentation"]["bar"] > 0
    pasted = info["copy_paste_rare"]
    assert pasted["pasted_first_epoch"]["bar"] >= 12  # p = 1: every image of the first epoch got 1-3 bars
    assert len(pasted["examples"]) == 3
    assert all((Path(ours.save_dir) / example).stat().st_size > 0 for example in pasted["examples"])


def test_an_out_of_memory_retry_gets_a_new_weighted_loader(data_yaml: Path, tmp_path: Path) -> None:
    options = TrainingOptions(sampling={"weights": "inverse"})
    trainer_class = Watched.for_stage(options, Recorded())
    trainer_class.fail_first_batch = True
    ours = train(data_yaml, tmp_path, "oom", trainer_class, epochs=1)
    assert ours.args.batch == 2  # Ultralytics halved the batch and rebuilt the loaders
    first, rebuilt = ours.samplers
    assert rebuilt is not first and ours.train_loader.sampler is rebuilt
    assert ours.seen[0] == [ours.train_loader.dataset.im_files[i] for i in rebuilt.draw(0)]
