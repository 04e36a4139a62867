"""Real (tiny) Ultralytics trainings through StagerunTrainer: loss installation, identity with plain
Ultralytics when the options are off or neutral, what is recorded, freeze and llrd, plain-loadable weights."""

from __future__ import annotations

import csv
import pickletools
import zipfile
from pathlib import Path

import pytest
import torch
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.torch_utils import unwrap_model

from client.synthetic import make_dataset
from shared.stage_kinds.training_options import TrainingOptions
from tests.e2e.stack import load_in_plain_ultralytics
from tests.worker.yolo_datasets import TINY_TRAIN
from worker.ultralytics_ext.loss import StagerunDetectionLoss
from worker.ultralytics_ext.trainer import StagerunTrainer

pytestmark = pytest.mark.slow

TINY = TINY_TRAIN


class Recorded:
    """Collects what a trainer records, where a stage's reporter would write it to stage.info."""

    def __init__(self) -> None:
        self.info: dict = {}

    def record(self, topic: str, value: object) -> None:
        self.info[topic] = value


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny"), train=8, val=4, size=64, seed=1)


def train(data_yaml: Path, out: Path, name: str, trainer: type, model: str = "yolov8n.yaml", **args):
    criteria: list[type] = []

    def on_train_epoch_end(t) -> None:
        criteria.append(type(unwrap_model(t.model).criterion))

    yolo = YOLO(model)
    yolo.add_callback("on_train_epoch_end", on_train_epoch_end)
    yolo.train(trainer=trainer, data=str(data_yaml), project=str(out), name=name, exist_ok=True, **{**TINY, **args})
    return yolo.trainer, criteria


def pickled_modules(checkpoint: Path) -> set[str]:
    """Every module a checkpoint's pickle imports classes or functions from (torch.save uses protocol 2)."""
    with zipfile.ZipFile(checkpoint) as archive:
        pickled = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    return {arg.split(" ")[0] for op, arg, _ in pickletools.genops(pickled) if op.name == "GLOBAL"}


def results_rows(trainer) -> list[dict]:
    with (Path(trainer.save_dir) / "results.csv").open() as handle:
        return [{k: float(v) for k, v in row.items() if k != "time"} for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def plain(data_yaml: Path, tmp_path_factory: pytest.TempPathFactory):
    return train(data_yaml, tmp_path_factory.mktemp("runs"), "plain", DetectionTrainer)


def test_options_off_install_nothing_and_train_exactly_like_plain_ultralytics(data_yaml, tmp_path, plain) -> None:
    options = TrainingOptions(auto_recipe=False, thin_boxes=None, starvation_batches=0)
    ours, criteria = train(data_yaml, tmp_path, "ours", StagerunTrainer.for_stage(options, Recorded()))
    plain_trainer, plain_criteria = plain
    assert criteria == plain_criteria == [v8DetectionLoss]
    assert results_rows(ours) == results_rows(plain_trainer)
    assert ours.reporter.info == {}


def test_neutral_loss_options_install_our_loss_and_match_plain(data_yaml, tmp_path, plain) -> None:
    options = TrainingOptions(auto_recipe=False, thin_boxes=None, class_weights={"square": 1.0}, focal={"gamma": 0.0})
    ours, criteria = train(data_yaml, tmp_path, "neutral", StagerunTrainer.for_stage(options, Recorded()))
    assert criteria == [StagerunDetectionLoss]
    plain_rows, our_rows = results_rows(plain[0]), results_rows(ours)
    assert [set(r) for r in our_rows] == [set(r) for r in plain_rows]
    for ours_row, plain_row in zip(our_rows, plain_rows, strict=True):
        for key, value in plain_row.items():
            assert ours_row[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert ours.reporter.info["class_weights"] == {"square": 1.0, "disc": 1.0, "bar": 1.0}
    assert ours.reporter.info["focal"] == {"gamma": 0.0, "alpha": None}


def test_weighted_focal_small_object_run_records_weights_and_saves_plain_weights(data_yaml, tmp_path) -> None:
    options = TrainingOptions(
        thin_boxes=None,
        class_weights={"bar": 4.0, "disc": 8.0},
        focal={"gamma": 2.0, "alpha": 0.25},
        small_object_gain={"gain": 3.0, "threshold": 0.01},
    )
    ours, criteria = train(data_yaml, tmp_path, "weighted", StagerunTrainer.for_stage(options, Recorded()))
    assert criteria == [StagerunDetectionLoss]
    info = ours.reporter.info
    assert info["class_weights"] == {"square": 1.0, "disc": 8.0, "bar": 4.0}
    assert set(info["class_instances"]) == {"square", "disc", "bar"} and sum(info["class_instances"].values()) > 0
    assert info["focal"] == {"gamma": 2.0, "alpha": 0.25}
    assert info["small_object_gain"] == {"gain": 3.0, "threshold": 0.01, "measure": "area"}
    best = Path(ours.save_dir) / "weights" / "best.pt"
    for weights in (best, best.with_name("last.pt")):
        modules = pickled_modules(weights)
        assert "ultralytics.nn.tasks" in modules and not {m.split(".")[0] for m in modules} & {
            "worker",
            "shared",
            "api",
        }
    image = next((data_yaml.parent / "images" / "val").glob("*.png"))
    assert "names ['bar', 'disc', 'square']" in load_in_plain_ultralytics(best, image, tmp_path / "plain")


def test_automatic_weights_from_training_labels(data_yaml, tmp_path) -> None:
    options = TrainingOptions(auto_recipe=False, thin_boxes=None, class_weights="inverse")
    ours, _ = train(data_yaml, tmp_path, "auto", StagerunTrainer.for_stage(options, Recorded()))
    counts = ours.reporter.info["class_instances"]
    inverse = {name: 1 / count for name, count in counts.items()}
    mean = sum(inverse.values()) / 3
    assert ours.reporter.info["class_weights"] == pytest.approx({k: v / mean for k, v in inverse.items()}, rel=1e-5)


def test_freeze_keeps_layers_and_llrd_decays_lr_per_layer(data_yaml, tmp_path) -> None:
    start = tmp_path / "start.pt"
    YOLO("yolov8n.yaml").save(start)
    initial = {k: v.clone() for k, v in torch.load(start, weights_only=False)["model"].float().state_dict().items()}
    options = TrainingOptions(auto_recipe=False, thin_boxes=None, llrd=0.5)
    ours, _ = train(
        data_yaml,
        tmp_path,
        "frozen",
        StagerunTrainer.for_stage(options, Recorded()),
        model=str(start),
        freeze=2,
        optimizer="SGD",
        lr0=0.01,
        warmup_epochs=0,
    )
    trained = unwrap_model(ours.model).state_dict()
    for key, before in initial.items():
        if key.startswith(("model.0.", "model.1.")) and before.is_floating_point():
            assert torch.equal(trained[key].cpu(), before), f"frozen {key} changed"
    assert not torch.equal(trained["model.2.cv1.conv.weight"].cpu(), initial["model.2.cv1.conv.weight"])

    layers = len(unwrap_model(ours.model).model)
    names = {id(p): n for n, p in unwrap_model(ours.model).named_parameters()}
    for group in ours.optimizer.param_groups:
        layer = int(names[id(group["params"][0])].split(".")[1])
        assert group["layer"] == layer and all(names[id(p)].startswith(f"model.{layer}.") for p in group["params"])
        assert group["initial_lr"] == pytest.approx(0.01 * 0.5 ** (layers - 1 - layer))
    assert {g["param_group"] for g in ours.optimizer.param_groups} == {"weight", "bn", "bias"}
    llrd = ours.reporter.info["llrd"]
    assert llrd["rate"] == 0.5 and llrd["layers"] == layers and llrd["lr0"] == 0.01 and "warning" not in llrd
    assert llrd["lr_by_layer"][-1] == 0.01 and llrd["lr_by_layer"][0] == pytest.approx(0.01 * 0.5 ** (layers - 1))


def test_llrd_with_optimizer_auto_is_recorded_with_a_warning(data_yaml, tmp_path) -> None:
    from ultralytics.nn.tasks import DetectionModel

    trainer_class = StagerunTrainer.for_stage(TrainingOptions(auto_recipe=False, thin_boxes=None, llrd=0.8), Recorded())
    trainer = trainer_class(overrides={"model": "yolov8n.yaml", "data": str(data_yaml), "project": str(tmp_path)})
    model = DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    optimizer = trainer.build_optimizer(model, name="auto", lr=0.01, iterations=100)
    llrd = trainer.reporter.info["llrd"]
    assert llrd["optimizer"] == "AdamW" and llrd["lr0"] == trainer.args.lr0 != 0.01
    assert "optimizer 'auto' chose AdamW" in llrd["warning"]
    assert max(g["lr"] for g in optimizer.param_groups) == pytest.approx(trainer.args.lr0)
    assert min(g["lr"] for g in optimizer.param_groups) == pytest.approx(
        trainer.args.lr0 * 0.8 ** (len(model.model) - 1)
    )


def test_loss_options_refuse_an_end_to_end_head_before_training(data_yaml, tmp_path) -> None:
    options = TrainingOptions(auto_recipe=False, thin_boxes=None, focal={"gamma": 2.0})
    with pytest.raises(ValueError, match="end-to-end head"):
        train(data_yaml, tmp_path, "e2e", StagerunTrainer.for_stage(options, Recorded()), model="yolo26n.yaml")


def test_freeze_indices_the_model_does_not_have_fail_the_stage_before_training(data_yaml, tmp_path) -> None:
    trainer = StagerunTrainer.for_stage(TrainingOptions(auto_recipe=False), Recorded())
    with pytest.raises(ValueError, match=r"freeze names layers \[999\] the model does not have \(it has 0..22\)"):
        train(data_yaml, tmp_path, "frozen", trainer, freeze=[0, 999])
