"""The default train stage (no option named) through real tiny trainings: plain Ultralytics on a dataset with
neither thin nor rare classes; the automatic recipe, recorded with its reasons, on one with thin bars; weights
that carry widen_thin's pad as plain data, load in plain Ultralytics, and are narrowed by stagerun's validator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.loss import v8DetectionLoss

from client.synthetic import make_dataset
from shared.schemas.pipeline import TrainStage
from tests.e2e.stack import load_in_plain_ultralytics
from tests.worker.test_trainer_options import Recorded, pickled_modules, results_rows, train
from worker.mining.capture import validator_with_sink
from worker.ultralytics_ext.assigner import ThinAwareAssigner
from worker.ultralytics_ext.loss import StagerunDetectionLoss
from worker.ultralytics_ext.trainer import StagerunTrainer
from worker.ultralytics_ext.widening import ATTRIBUTE

pytestmark = pytest.mark.slow

BAR = 2


def default_stage(**options) -> TrainStage:
    return TrainStage(type="train", **options)


@pytest.fixture(scope="module")
def wide_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Squares, discs and bars 10-14 px wide at 64 px: nothing thin, classes drawn uniformly."""
    return make_dataset(tmp_path_factory.mktemp("wide"), train=12, val=4, size=64, seed=3, bar_px=(10, 14))


@pytest.fixture(scope="module")
def thin_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("thin"), train=8, val=4, size=96, seed=2, bar_px=(1, 2))


@pytest.fixture(scope="module")
def thin_run(thin_data: Path, tmp_path_factory: pytest.TempPathFactory):
    trainer = StagerunTrainer.for_stage(default_stage(), Recorded())
    return train(thin_data, tmp_path_factory.mktemp("runs"), "auto", trainer, epochs=2, imgsz=96)


def test_the_default_stage_trains_exactly_like_plain_ultralytics_on_data_with_neither(wide_data, tmp_path) -> None:
    plain, plain_criteria = train(wide_data, tmp_path, "plain", DetectionTrainer)
    ours, criteria = train(wide_data, tmp_path, "ours", StagerunTrainer.for_stage(default_stage(), Recorded()))
    assert criteria == plain_criteria == [v8DetectionLoss]
    assert results_rows(ours) == results_rows(plain)
    recipe = ours.reporter.info["automatic_recipe"]
    assert recipe["choices"] == [] and recipe["classes_at_risk"] == []
    assert not hasattr(ours.model, ATTRIBUTE)


def test_the_default_stage_applies_the_thin_recipe_and_records_each_choice(thin_run) -> None:
    trainer, criteria = thin_run
    info = trainer.reporter.info
    chosen = {choice["option"]: choice for choice in info["automatic_recipe"]["choices"]}
    assert {"thin_boxes", "widen_thin"} <= set(chosen)
    assert "thin_assigner" not in chosen  # every thin class is widened: no longer thin, plain assignment
    assert chosen["widen_thin"]["value"]["classes"] == ["bar"]
    assert "bar (1." in chosen["widen_thin"]["reason"] and "imgsz 96" in chosen["widen_thin"]["reason"]
    assert criteria == [StagerunDetectionLoss] * 2
    criterion = trainer.model.criterion
    assert not isinstance(criterion.task_assigner, ThinAwareAssigner)
    assert criterion.box_pad_px[BAR, 0] == pytest.approx(8.0 - 1.0, abs=0.6) and criterion.box_pad_px[0].sum() == 0
    assert info["widen_thin"]["pad_px_at_imgsz"]["bar"][0] == pytest.approx(
        float(criterion.box_pad_px[BAR, 0]), abs=1e-3
    )


def test_weights_carry_the_pad_as_plain_data_and_load_in_plain_ultralytics(thin_run, thin_data, tmp_path) -> None:
    trainer, _ = thin_run
    best = Path(trainer.save_dir) / "weights" / "best.pt"
    for weights in (best, best.with_name("last.pt")):
        assert not {m.split(".")[0] for m in pickled_modules(weights)} & {"worker", "shared", "api"}
    pad = getattr(YOLO(str(best)).model, ATTRIBUTE)
    assert pad["names"] == ["square", "disc", "bar"] and pad["pad"][BAR][0] > 0 and pad["imgsz"] == 96
    image = next((thin_data.parent / "images" / "val").glob("*.png"))
    assert "names ['bar', 'disc', 'square']" in load_in_plain_ultralytics(best, image, tmp_path / "plain")


def test_stagerun_validation_reads_the_pad_of_the_weights_it_validates(thin_run, thin_data) -> None:
    trainer, _ = thin_run
    best = str(Path(trainer.save_dir) / "weights" / "best.pt")
    seen = []
    validator = validator_with_sink(lambda image: None)
    original = validator.init_metrics

    def init_metrics(self, model) -> None:
        original(self, model)
        seen.append(None if self.box_pad_px is None else self.box_pad_px.clone())

    validator.init_metrics = init_metrics
    model = YOLO(best)
    model.val(validator=validator, data=str(thin_data), imgsz=96, batch=4, device="cpu", plots=False, workers=0)
    [pads] = seen
    stored = getattr(model.model, ATTRIBUTE)["pad"]
    assert pads.flatten().tolist() == pytest.approx([v * 96 for pair in stored for v in pair])
    assert trainer.validator.box_pad_px is not None  # the trainer's own per-epoch validation narrowed too


def test_the_validator_narrows_each_prediction_by_its_class_pad_after_nms() -> None:
    import torch
    from ultralytics.cfg import get_cfg

    from worker.ultralytics_ext.widening import NarrowingValidator

    validator = NarrowingValidator(args=get_cfg(overrides={"conf": 0.25, "iou": 0.7, "task": "detect"}))
    validator.nc, validator.end2end = 3, False
    validator.box_pad_px = torch.tensor([[0.0, 0.0], [0.0, 0.0], [7.0, 0.0]])
    raw = torch.zeros(1, 4 + 3, 2)
    raw[0, :4, 0] = torch.tensor([20.0, 50.0, 8.0, 40.0])  # a widened bar, 8 px: 1 px once narrowed
    raw[0, 4 + BAR, 0] = 0.9
    raw[0, :4, 1] = torch.tensor([60.0, 30.0, 12.0, 12.0])  # a square
    raw[0, 4 + 0, 1] = 0.8
    [out] = validator.postprocess(raw)
    by_class = {int(c): box.tolist() for c, box in zip(out["cls"], out["bboxes"], strict=True)}
    assert by_class[BAR] == pytest.approx([19.5, 30.0, 20.5, 70.0])
    assert by_class[0] == pytest.approx([54.0, 24.0, 66.0, 36.0])


def test_a_named_option_or_auto_recipe_false_wins_over_the_recipe(thin_data, tmp_path) -> None:
    no_widen, _ = train(
        thin_data, tmp_path, "no-widen", StagerunTrainer.for_stage(default_stage(widen_thin=None), Recorded()), imgsz=96
    )
    chosen = {choice["option"] for choice in no_widen.reporter.info["automatic_recipe"]["choices"]}
    assert "widen_thin" not in chosen and "thin_assigner" in chosen and no_widen.model.criterion.box_pad_px is None
    off, criteria = train(
        thin_data, tmp_path, "off", StagerunTrainer.for_stage(default_stage(auto_recipe=False), Recorded()), imgsz=96
    )
    assert criteria == [v8DetectionLoss] and "automatic_recipe" not in off.reporter.info


def test_balanced_box_weight_gives_a_widened_class_its_unwidened_share_of_the_box_loss(thin_data, tmp_path) -> None:
    stage = default_stage(widen_thin={"box_weight": "balanced"}, thin_assigner=None)
    trainer, _ = train(
        thin_data, tmp_path, "balanced", StagerunTrainer.for_stage(stage, Recorded()), epochs=1, imgsz=96
    )
    criterion = trainer.model.criterion
    pad = float(criterion.box_pad_px[BAR, 0])
    weights = criterion.bbox_loss.class_weights.flatten().tolist()
    assert weights[BAR] == pytest.approx((8.0 - pad) / 8.0, abs=1e-3) and 0 < weights[BAR] < 0.5
    assert [w for i, w in enumerate(weights) if i != BAR] == [1.0] * (len(weights) - 1)
    assert trainer.reporter.info["box_class_weights"] == {"bar": pytest.approx(weights[BAR], abs=1e-5)}


def test_narrowed_box_iou_trains_with_the_pads_and_is_recorded(thin_data, tmp_path) -> None:
    stage = default_stage(widen_thin={"box_iou": "narrowed", "box_weight": 0.3}, thin_assigner=None)
    trainer, _ = train(thin_data, tmp_path, "narrowed", StagerunTrainer.for_stage(stage, Recorded()), epochs=1, imgsz=96)
    bbox_loss = trainer.model.criterion.bbox_loss
    assert bbox_loss.narrow_px is not None and float(bbox_loss.narrow_px[BAR, 0]) > 0
    torch.testing.assert_close(bbox_loss.narrow_px, trainer.model.criterion.box_pad_px)
    assert trainer.reporter.info["box_iou"] == "narrowed"
    assert trainer.reporter.info["box_class_weights"] == {"bar": 0.3}
    assert results_rows(trainer)  # it trained an epoch


def test_finest_level_widening_builds_a_finest_only_assigner_and_is_recorded(thin_data, tmp_path) -> None:
    stage = default_stage(widen_thin={"levels": "finest"}, thin_assigner=None)
    trainer, _ = train(thin_data, tmp_path, "finest", StagerunTrainer.for_stage(stage, Recorded()), epochs=1, imgsz=96)
    assigner = trainer.model.criterion.task_assigner
    assert isinstance(assigner, ThinAwareAssigner) and assigner.finest_classes == frozenset({BAR})
    assert trainer.reporter.info["widened_finest_level_only"] == ["bar"]
    assert results_rows(trainer)


def test_widened_topk_builds_an_assigner_that_keeps_few_positives_and_is_recorded(thin_data, tmp_path) -> None:
    stage = default_stage(widen_thin={"topk": 1}, thin_assigner=None)
    trainer, _ = train(thin_data, tmp_path, "topk", StagerunTrainer.for_stage(stage, Recorded()), epochs=1, imgsz=96)
    assigner = trainer.model.criterion.task_assigner
    assert isinstance(assigner, ThinAwareAssigner)
    assert assigner.few_classes == frozenset({BAR}) and assigner.few_topk == 1 and assigner.topk == 10
    assert trainer.reporter.info["widened_topk"] == {"classes": ["bar"], "topk": 1}
    assert results_rows(trainer)


def test_head_box_gradient_trains_with_routed_boxes_and_is_recorded(thin_data, tmp_path) -> None:
    stage = default_stage(widen_thin={"box_gradient": "head"}, thin_assigner=None)
    trainer, _ = train(thin_data, tmp_path, "head", StagerunTrainer.for_stage(stage, Recorded()), epochs=1, imgsz=96)
    criterion = trainer.model.criterion
    assert criterion.head_box_classes.tolist() == [BAR]
    assert trainer.reporter.info["widened_box_gradient"] == {"classes": ["bar"], "to": "head"}
    assert results_rows(trainer)
    assert not any(m.split(".")[0] in ("worker", "shared") for m in pickled_modules(Path(trainer.best)))


def test_coarse_classes_build_an_assigner_that_keeps_them_off_the_finest_level_and_are_recorded(
    thin_data, tmp_path
) -> None:
    stage = default_stage(widen_thin={"levels": "finest", "coarse_classes": ["square", "1"]}, thin_assigner=None)
    trainer, _ = train(thin_data, tmp_path, "coarse", StagerunTrainer.for_stage(stage, Recorded()), epochs=1, imgsz=96)
    assigner = trainer.model.criterion.task_assigner
    assert assigner.coarse_classes == frozenset({0, 1}) and assigner.finest_classes == frozenset({BAR})
    assert trainer.reporter.info["coarse_level_classes"] == ["square", "disc"]
    assert results_rows(trainer)


def test_a_widened_class_named_coarse_is_refused_with_the_field(thin_data, tmp_path) -> None:
    from shared.errors import InvalidSpec

    stage = default_stage(widen_thin={"coarse_classes": ["bar"]}, thin_assigner=None)
    with pytest.raises(InvalidSpec, match="bar: a widened class") as error:
        train(thin_data, tmp_path, "both", StagerunTrainer.for_stage(stage, Recorded()), epochs=1, imgsz=96)
    assert error.value.field == "widen_thin.coarse_classes"
