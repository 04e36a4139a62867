"""Class weights: explicit maps resolved against the dataset's names, automatic strategies by hand."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from shared.class_weights import automatic_weights, class_weights, explicit_weights
from shared.errors import InvalidSpec
from shared.schemas.pipeline import TrainStage
from shared.stage_kinds.training_options import AutoClassWeights

NAMES = ["notehead", "stem", "barline", "barline_double"]


def test_explicit_by_name_and_id_unlisted_weigh_one() -> None:
    assert explicit_weights({"barline": 4, "3": 8}, NAMES) == [1.0, 1.0, 4.0, 8.0]


@pytest.mark.parametrize(
    ("weights", "message", "field"),
    [
        ({"clef": 2}, "unknown class 'clef'", "class_weights.clef"),
        ({"7": 2}, "class id 7 is out of range", "class_weights.7"),
        ({"barline": 2, "2": 3}, "given twice", "class_weights"),
    ],
)
def test_explicit_refuses_unknown_out_of_range_and_repeated(weights: dict, message: str, field: str) -> None:
    with pytest.raises(InvalidSpec, match=message) as caught:
        explicit_weights(weights, NAMES)
    assert caught.value.field == field


def test_inverse_and_sqrt_inverse_by_hand() -> None:
    # counts 1, 4: inverse raw 1, 0.25 (mean 0.625) -> 1.6, 0.4
    assert automatic_weights("inverse", [1, 4]) == pytest.approx([1.6, 0.4])
    # sqrt inverse raw 1, 0.5 (mean 0.75) -> 4/3, 2/3
    assert automatic_weights("sqrt_inverse", [1, 4]) == pytest.approx([4 / 3, 2 / 3])


def test_effective_number_by_hand_and_limits() -> None:
    beta = 0.9
    raw = [(1 - beta) / (1 - beta**n) for n in (1, 10)]  # 1.0 and 0.1/(1-0.9^10) = 0.15353...
    mean = sum(raw) / 2
    assert automatic_weights("effective_number", [1, 10], beta) == pytest.approx([r / mean for r in raw])
    assert raw[1] == pytest.approx(0.1 / (1 - 0.9**10))
    # beta -> 0 makes every class equal; the mean is always 1
    assert automatic_weights("effective_number", [1, 1000], 1e-9) == pytest.approx([1.0, 1.0])
    weights = automatic_weights("effective_number", [5, 50, 500, 0])
    assert math.isclose(sum(weights) / len(weights), 1.0)


def test_a_class_without_instances_counts_as_one() -> None:
    assert automatic_weights("inverse", [0, 1, 2]) == pytest.approx(automatic_weights("inverse", [1, 1, 2]))


def test_min_weight_raises_only_the_weights_below_it() -> None:
    # sqrt inverse of 1, 4, 4: raw 1, 0.5, 0.5 (mean 2/3) -> 1.5, 0.75, 0.75; floored at 1 -> 1.5, 1, 1
    assert automatic_weights("sqrt_inverse", [1, 4, 4]) == pytest.approx([1.5, 0.75, 0.75])
    assert automatic_weights("sqrt_inverse", [1, 4, 4], min_weight=1.0) == pytest.approx([1.5, 1.0, 1.0])
    auto = AutoClassWeights(strategy="sqrt_inverse", min_weight=1.0)
    assert class_weights(auto, NAMES, [100, 100, 10, 1]) == pytest.approx(
        [max(w, 1.0) for w in automatic_weights("sqrt_inverse", [100, 100, 10, 1])]
    )


def test_spec_forms() -> None:
    counts = [100, 100, 10, 1]
    assert class_weights("inverse", NAMES, counts) == automatic_weights("inverse", counts)
    auto = AutoClassWeights(strategy="effective_number", beta=0.99)
    assert class_weights(auto, NAMES, counts) == automatic_weights("effective_number", counts, 0.99)
    assert class_weights({"stem": 3}, NAMES, counts) == [1.0, 3.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "options",
    [
        {"class_weights": {}},
        {"class_weights": {"barline": 0}},
        {"class_weights": {"barline": -1}},
        {"class_weights": "median"},
        {"class_weights": {"strategy": "sqrt_inverse", "min_weight": 0}},
        {"focal": {"gamma": -1}},
        {"focal": {"alpha": 1.5}},
        {"small_object_gain": {"gain": 0.5}},
        {"sampling": {"ramp_epochs": -2}},
        {"copy_paste_rare": {"classes": []}},
        {"thin_boxes": {"min_box_px": 0}},
        {"freeze": [1, 1]},
        {"freeze": -3},
        {"llrd": 0},
        {"focal": {"gamma": 2, "beta": 1}},
    ],
)
def test_train_stage_refuses_bad_options(options: dict) -> None:
    with pytest.raises(ValidationError):
        TrainStage(type="train", **options)


def test_options_are_stagerun_own_but_freeze_goes_to_ultralytics() -> None:
    stage = TrainStage(type="train", class_weights="inverse", focal={"gamma": 1.5}, freeze=[0, 1], llrd=0.8)
    args = stage.ultralytics_args()
    assert args["freeze"] == [0, 1]
    assert not {"class_weights", "focal", "llrd", "thin_boxes", "sampling", "auto_recipe", "widen_thin"} & set(args)
    assert stage.thin_boxes is None and stage.auto_recipe  # thin-box keeping comes from the automatic recipe
    assert stage.named_options() == {"class_weights", "focal", "llrd"}


def test_class_indices_by_id_and_name_each_once() -> None:
    from shared.class_weights import class_indices

    assert class_indices(["barline_double", 1, "0"], NAMES, "classes") == [3, 1, 0]
    with pytest.raises(InvalidSpec, match="named twice") as caught:
        class_indices(["stem", 1], NAMES, "classes")
    assert caught.value.field == "classes.1"
