"""Real (tiny) trainings with the thin-aware assigner: the starvation report on a synthetic dataset whose
bars are 3 px wide on 96 px images, identity with plain Ultralytics when the options are neutral, and
checkpoints that plain Ultralytics loads with stagerun absent."""

from __future__ import annotations

from pathlib import Path

import pytest
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.loss import v8DetectionLoss

from client.synthetic import make_dataset
from shared.stage_kinds.training_options import ThinAssigner, TrainingOptions
from tests.e2e.stack import load_in_plain_ultralytics
from tests.worker.test_trainer_options import Recorded, pickled_modules, results_rows, train
from worker.ultralytics_ext.assigner import ThinAwareAssigner
from worker.ultralytics_ext.loss import StagerunDetectionLoss
from worker.ultralytics_ext.trainer import StagerunTrainer

pytestmark = pytest.mark.slow

# No scaling or mosaic, so the 3 px bars survive Ultralytics' augmentation (it drops boxes of 2 px or less).
THIN_RUN = {"epochs": 2, "imgsz": 96, "batch": 2, "scale": 0.0, "mosaic": 0.0, "translate": 0.0}


@pytest.fixture(scope="module")
def thin_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("thin"), train=8, val=4, size=96, seed=2, bar_px=(3, 3))


def starvation_of(data: Path, out: Path, name: str, options: TrainingOptions):
    trainer, criteria = train(data, out, name, StagerunTrainer.for_stage(options, Recorded()), **THIN_RUN)
    return trainer, criteria, trainer.reporter.info["starvation"]


def test_bars_are_starved_with_the_options_off_and_fed_with_them_on(thin_data: Path, tmp_path: Path) -> None:
    trainer_off, criteria, off = starvation_of(thin_data, tmp_path, "off", TrainingOptions(auto_recipe=False, thin_boxes=None, starvation_batches=3))
    assert criteria == [v8DetectionLoss] * 2
    assert set(off) == {"first_epoch", "last_epoch"}
    assert (off["first_epoch"]["epoch"], off["last_epoch"]["epoch"]) == (1, 2)
    assert off["first_epoch"]["batches"] == 3  # the loss exists from the second batch on; 3 of 3 left
    bar = off["first_epoch"]["classes"]["bar"]
    assert bar["boxes"] > 0 and bar["starved"] >= 0.8
    [at_risk] = trainer_off.reporter.info["classes_at_risk"]  # named before the first batch, at the stage's imgsz
    assert at_risk["name"] == "bar" and at_risk["median_thin_side_px"] == pytest.approx(3.0, abs=0.5)
    assert any("aspect ratio" in reason for reason in at_risk["reasons"])

    on_options = TrainingOptions(auto_recipe=False, thin_boxes=None, starvation_batches=3, thin_assigner=ThinAssigner())
    trainer, criteria, on = starvation_of(thin_data, tmp_path, "on", on_options)
    assert criteria == [StagerunDetectionLoss] * 2
    assert isinstance(trainer.model.criterion.task_assigner, ThinAwareAssigner)
    assert trainer.reporter.info["thin_assigner"] == {"iou": "iou", "target_floor": 0.1, "floor_on": "starved"}
    for phase in ("first_epoch", "last_epoch"):
        assert on[phase]["classes"]["bar"]["starved"] <= 0.05, on[phase]

    best = Path(trainer.save_dir) / "weights" / "best.pt"
    for weights in (best, best.with_name("last.pt")):
        assert not {m.split(".")[0] for m in pickled_modules(weights)} & {"worker", "shared", "api"}
    image = next((thin_data.parent / "images" / "val").glob("*.png"))
    assert "names ['bar', 'disc', 'square']" in load_in_plain_ultralytics(best, image, tmp_path / "plain")


def test_neutral_thin_assigner_and_the_starvation_report_train_like_plain_ultralytics(thin_data, tmp_path) -> None:
    plain, _ = train(thin_data, tmp_path, "plain", DetectionTrainer, epochs=1, imgsz=96)
    reported, _ = train(
        thin_data,
        tmp_path,
        "reported",
        StagerunTrainer.for_stage(TrainingOptions(auto_recipe=False, thin_boxes=None, starvation_batches=8), Recorded()),
        epochs=1,
        imgsz=96,
    )
    assert results_rows(reported) == results_rows(plain)  # the report only reads the assigner's outputs
    neutral = TrainingOptions(auto_recipe=False, thin_boxes=None, thin_assigner=ThinAssigner(iou="ciou", target_floor=0.0))
    ours, criteria = train(thin_data, tmp_path, "neutral", StagerunTrainer.for_stage(neutral, Recorded()), epochs=1,
                           imgsz=96)
    assert criteria == [StagerunDetectionLoss]
    for ours_row, plain_row in zip(results_rows(ours), results_rows(plain), strict=True):
        for key, value in plain_row.items():
            assert ours_row[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
