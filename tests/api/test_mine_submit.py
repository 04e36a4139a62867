"""Submit-time checks of mine stages and of train stages that use a mined dataset."""

import pytest


def submit(client, pipeline, *stages):
    return client.post("/v1/jobs", json={**pipeline, "stages": [pipeline["stages"][0], *stages]})


def error_of(response):
    assert response.status_code == 422, response.text
    return response.json()["error"]


def test_train_mine_train_from_stage_is_accepted(client, pipeline):
    response = submit(
        client,
        pipeline,
        {"type": "mine", "imgsz": 64, "classes": ["bar", 0], "max_images": 4},
        {"type": "train", "data": "from_stage", "epochs": 1, "imgsz": 64},
    )
    assert response.status_code == 202, response.text
    assert [s["type"] for s in response.json()["stages"]] == ["train", "mine", "train"]


def test_from_stage_without_an_earlier_mine_stage_is_refused(client, pipeline):
    error = error_of(submit(client, pipeline, {"type": "train", "data": "from_stage", "epochs": 1}))
    assert error["field"] == "stages.1.data" and "mine stage" in error["message"]


def test_mine_without_weights_is_refused(client, pipeline):
    response = client.post("/v1/jobs", json={**pipeline, "stages": [{"type": "mine"}]})
    error = error_of(response)
    assert error["field"] == "stages.0.weights" and "needs weights" in error["message"]


@pytest.mark.parametrize(
    ("classes", "words", "suffix"),
    [
        (["violin"], "unknown class 'violin'", ".0"),
        (["bar", 7], "class id 7 is out of range", ".1"),
        ([2, "bar"], "named twice", ".1"),
        ([1, 1], "lists a class twice", ""),
    ],
)
def test_unknown_or_repeated_classes_are_refused(client, pipeline, classes, words, suffix):
    error = error_of(submit(client, pipeline, {"type": "mine", "classes": classes}))
    assert error["field"] == f"stages.1.classes{suffix}" and words in error["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("conf", 1.0),
        ("conf", 0),
        ("iou", 1.5),
        ("min_conf", 0.9),
        ("low_conf", 0.8),
        ("min_difficulty", -1),
        ("difficulty_reduction", "mean"),
        ("split", "test"),
        ("max_images", 0),
        ("replay", 1.0),
        ("preview", 1000),
        ("imgsz", 50),
        ("batch", 0),
        ("classes", []),
        ("bogus", 1),
    ],
)
def test_out_of_bounds_fields_name_the_field(client, pipeline, field, value):
    error = error_of(submit(client, pipeline, {"type": "mine", field: value}))
    assert error["field"] == f"stages.1.{field}", error
