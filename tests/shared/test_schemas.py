import pytest
from pydantic import ValidationError

from shared.schemas import EvaluateStage, JobCreate, TrainStage


def job(*stages, **extra):
    return {"dataset": "tiny", "stages": list(stages), **extra}


def errors_of(body) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        JobCreate.model_validate(body)
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in info.value.errors()]


def test_valid_pipeline_and_defaults():
    spec = JobCreate.model_validate(job({"type": "train", "epochs": 2, "imgsz": 64}, {"type": "evaluate"}))
    train, evaluate = spec.stages
    assert isinstance(train, TrainStage) and isinstance(evaluate, EvaluateStage)
    assert spec.model == "yolov8n.yaml"
    assert train.ultralytics_args() == {"epochs": 2, "batch": 16, "imgsz": 64}
    assert evaluate.ultralytics_args() == {"split": "val", "imgsz": 640, "batch": 16, "augment": False, "plots": True}


@pytest.mark.parametrize(
    ("stage", "field", "needle"),
    [
        ({"type": "train", "epoch": 3}, "stages.0.train.epoch", "Extra inputs"),
        ({"type": "train", "epochs": 0}, "stages.0.train.epochs", "greater than or equal to 1"),
        ({"type": "train", "epochs": "many"}, "stages.0.train.epochs", "valid integer"),
        ({"type": "train", "imgsz": 100}, "stages.0.train.imgsz", "multiple of 32"),
        ({"type": "train", "imgsz": 100000}, "stages.0.train.imgsz", "less than or equal"),
        ({"type": "train", "batch": 0}, "stages.0.train.batch", "between 1 and 1024"),
        ({"type": "train", "batch": 1.5}, "stages.0.train.batch", "between 0 and 1"),
        ({"type": "train", "batch": True}, "stages.0.train.batch", "must be a number"),
        ({"type": "train", "lr0": -1, "optimizer": "SGD"}, "stages.0.train.lr0", "greater than 0"),
        ({"type": "train", "lr0": 0.01}, "stages.0.train.lr0", "optimizer 'auto' ignores lr0"),
        ({"type": "train", "momentum": 0.9, "optimizer": "auto"}, "stages.0.train.momentum", "ignores momentum"),
        ({"type": "train", "optimizer": "Adagrad"}, "stages.0.train.optimizer", "Input should be"),
        ({"type": "train", "mosaic": 1.5}, "stages.0.train.mosaic", "less than or equal to 1"),
        ({"type": "train", "epochs": 3, "close_mosaic": 5}, "stages.0.train.close_mosaic", "exceeds epochs"),
        ({"type": "train", "cache": "gpu"}, "stages.0.train.cache", "cache must be 'ram', 'disk', true or false"),
        ({"type": "train", "thin_assigner": {"iou": "giou"}}, "stages.0.train.thin_assigner.iou", "Input should be"),
        ({"type": "train", "thin_assigner": {"target_floor": 1.5}}, "stages.0.train.thin_assigner.target_floor", "less"),
        ({"type": "train", "thin_assigner": {"floor_on": "some"}}, "stages.0.train.thin_assigner.floor_on", "Input"),
        ({"type": "train", "thin_assigner": {"floor": 0.1}}, "stages.0.train.thin_assigner.floor", "Extra inputs"),
        ({"type": "train", "starvation_batches": -1}, "stages.0.train.starvation_batches", "greater than or equal"),
        ({"type": "evaluate", "split": "holdout"}, "stages.0.evaluate.split", "Input should be"),
        ({"type": "evaluate", "conf": 1.0}, "stages.0.evaluate.conf", "less than 1"),
        ({"type": "explode"}, "stages.0", "does not match any of the expected tags"),
        ({"epochs": 3}, "stages.0", "Unable to extract tag"),
    ],
)
def test_bad_stage_names_the_field(stage, field, needle):
    found = errors_of(job(stage))
    assert any(loc == field and needle in msg for loc, msg in found), found


def test_bad_job_level_fields():
    assert errors_of({"dataset": "tiny", "stages": []})[0][0] == "stages"
    assert errors_of(job({"type": "train"}, color="red"))[0][0] == "color"
    assert errors_of(job({"type": "train"}, tags=["ok", "not ok!"]))[0][0] == "tags.1"
    assert errors_of({"stages": [{"type": "train"}]})[0][0] == "dataset"


def test_named_optimizer_accepts_learning_rates():
    stage = TrainStage.model_validate({"type": "train", "optimizer": "SGD", "lr0": 0.01, "momentum": 0.9})
    assert stage.ultralytics_args()["lr0"] == 0.01


def test_stagerun_fields_are_not_passed_to_ultralytics():
    stage = TrainStage.model_validate({"type": "train", "start_from": "model", "name": "warmup"})
    assert "start_from" not in stage.ultralytics_args() and "name" not in stage.ultralytics_args()


def test_thin_assigner_defaults_and_it_stays_out_of_ultralytics_args():
    stage = TrainStage.model_validate({"type": "train", "thin_assigner": {}})
    assert stage.thin_assigner.model_dump() == {"iou": "iou", "target_floor": 0.1, "floor_on": "starved"}
    assert TrainStage.model_validate({"type": "train"}).thin_assigner is None
    assert not {"thin_assigner", "starvation_batches"} & set(stage.ultralytics_args())
