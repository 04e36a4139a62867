"""A search's space: which parameters it may vary, how a trial's values become a train stage, and the submit-time
check that builds the train stage at each end of every range (a bad range is a 422 naming it, not a failed trial)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.errors import InvalidSpec
from shared.search_space import SearchParam, check_space, trial_train_spec

BASE = {"type": "train", "epochs": 1, "imgsz": 64}


def space(**params) -> dict[str, SearchParam]:
    return {name: SearchParam.model_validate(value) for name, value in params.items()}


def test_values_land_in_train_fields_and_option_fields():
    spec = trial_train_spec(
        {**BASE, "focal": {"alpha": 0.25}},
        {"lr0": 0.01, "focal_gamma": 1.5, "thin_assigner.target_floor": 0.2, "cls": 0.7, "sampling_strength": "none"},
    )
    assert spec["lr0"] == 0.01 and spec["cls_gain"] == 0.7
    assert spec["focal"] == {"alpha": 0.25, "gamma": 1.5}  # the base's own option fields are kept
    assert spec["thin_assigner"] == {"target_floor": 0.2}
    assert spec["sampling"] is None
    assert trial_train_spec(BASE, {"sampling.weights": "inverse"})["sampling"] == {"weights": "inverse"}


def test_a_valid_space_passes():
    check_space(space(optimizer={"choices": ["SGD", "AdamW"]}, lr0={"low": 1e-4, "high": 0.05, "log": True},
                      momentum={"low": 0.6, "high": 0.98}, focal_gamma={"low": 0.5, "high": 3.0},
                      class_weight_strength={"low": 0.5, "high": 2.0},
                      **{"thin_assigner.target_floor": {"low": 0.0, "high": 0.3}}), BASE, "stages.0")


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"lr0": {"low": 0.001, "high": 0.01}}, "stages.0.space.lr0", "optimizer 'auto' ignores lr0"),
        ({"momentum": {"low": 0.5, "high": 1.0}, "optimizer": {"choices": ["SGD"]}}, "stages.0.space.momentum",
         "momentum = 1.0"),
        ({"epochs": {"low": 1, "high": 5, "int": True}}, "stages.0.space.epochs", "not a searchable parameter"),
        ({"warp_speed": {"low": 1, "high": 2}}, "stages.0.space.warp_speed", "not a searchable parameter"),
        ({"focal.beta": {"low": 1, "high": 2}}, "stages.0.space.focal.beta", "focal has no field 'beta'"),
        ({"focal": {"choices": [1]}}, "stages.0.space.focal", "search one of them"),
        ({"cls": {"low": 0.1, "high": 1}, "cls_gain": {"low": 0.1, "high": 2}}, "stages.0.space.cls_gain",
         "name the same parameter"),
        ({"box": {"low": 1, "high": 500}}, "stages.0.space.box", "box = 500"),
    ],
)
def test_a_bad_space_is_refused_naming_the_parameter(params, field, message):
    with pytest.raises(InvalidSpec) as caught:
        check_space(space(**params), BASE, "stages.0")
    assert caught.value.field == field and message in caught.value.message


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ({"low": 1.0}, "needs both low and high"),
        ({"low": 2.0, "high": 1.0}, "must be below high"),
        ({"low": 0.0, "high": 1.0, "log": True}, "log range needs low > 0"),
        ({"low": 0.0, "high": 1.0, "choices": [1]}, "either choices or a range"),
        ({"low": 0.5, "high": 3, "int": True}, "whole low and high"),
        ({"choices": []}, "at least 1 item"),
    ],
)
def test_a_malformed_parameter_is_refused(param, message):
    with pytest.raises(ValidationError, match=message):
        SearchParam.model_validate(param)
