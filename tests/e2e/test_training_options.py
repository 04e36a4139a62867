"""A weighted focal train stage through the API and a real worker: the weights used are shown on the stage,
and its best.pt loads in plain Ultralytics with stagerun absent."""

import pytest

from tests.e2e.checks import (
    check_metric_rows_match_results_csv,
    check_weights_download_and_plain_load,
    tiny_pipeline,
    train_only_pipeline,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(stack_factory):
    return stack_factory("options")


def test_weighted_focal_stage_shows_weights_used_and_saves_plain_weights(stack, tmp_path):
    pipeline = train_only_pipeline(
        epochs=1,
        class_weights={"bar": 4, "disc": 8},
        focal={"gamma": 2.0},
        small_object_gain={"gain": 2.0, "threshold": 0.01, "measure": "width"},
        optimizer="SGD",
        lr0=0.01,
        llrd=0.9,
    )
    job = stack.run_to_success(pipeline)
    info = job["stages"][0]["info"]
    assert info["class_weights"] == {"square": 1.0, "disc": 8.0, "bar": 4.0}
    assert info["focal"] == {"gamma": 2.0, "alpha": None}
    assert info["small_object_gain"] == {"gain": 2.0, "threshold": 0.01, "measure": "width"}
    assert info["llrd"]["rate"] == 0.9 and info["llrd"]["lr_by_layer"][-1] == 0.01
    check_metric_rows_match_results_csv(stack, job, 0)
    check_weights_download_and_plain_load(stack, job, tmp_path)


def test_unknown_class_in_weights_is_refused_at_submit(stack):
    with stack.client() as client:
        response = client.post("/v1/jobs", json=tiny_pipeline(class_weights={"clef": 2}))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "clef" in error["message"] and error["field"].endswith("class_weights.clef")
