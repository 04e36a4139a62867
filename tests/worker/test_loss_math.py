"""Focal BCE on soft targets and the small-object weighting, against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from worker.ultralytics_ext.loss_math import focal_bce, small_box_mask, small_object_weights

LN2 = math.log(2.0)
LOGIT_075 = math.log(3.0)  # sigmoid(ln 3) = 0.75


def values(logits: list[float], targets: list[float], **kwargs) -> list[float]:
    return focal_bce(torch.tensor(logits), torch.tensor(targets), **kwargs).tolist()


def test_plain_bce_when_gamma_zero_and_no_alpha() -> None:
    got = values([0.0, 0.0, 0.0, LOGIT_075], [1.0, 0.0, 0.5, 1.0])
    assert got == pytest.approx([LN2, LN2, LN2, -math.log(0.75)], rel=1e-6)


def test_gamma_modulates_by_distance_to_the_soft_target() -> None:
    got = values([0.0, 0.0, 0.0, LOGIT_075], [1.0, 0.0, 0.5, 1.0], gamma=2.0)
    # |t - p|^2: 0.25, 0.25, 0 (prediction already equals the soft target), 0.0625
    assert got == pytest.approx([0.25 * LN2, 0.25 * LN2, 0.0, 0.0625 * -math.log(0.75)], rel=1e-6, abs=1e-12)


def test_alpha_weighs_positives_alpha_and_negatives_one_minus_alpha() -> None:
    got = values([0.0, 0.0, 0.0], [1.0, 0.0, 0.5], alpha=0.25)
    assert got == pytest.approx([0.25 * LN2, 0.75 * LN2, 0.5 * LN2], rel=1e-6)
    got = values([LOGIT_075], [1.0], gamma=2.0, alpha=0.25)
    assert got == pytest.approx([0.25 * 0.0625 * -math.log(0.75)], rel=1e-6)


def test_gamma_one_uses_absolute_distance() -> None:
    assert values([LOGIT_075], [0.25], gamma=1.0) == pytest.approx(
        [0.5 * -(0.25 * math.log(0.75) + 0.75 * math.log(0.25))], rel=1e-6
    )


def test_small_box_mask_by_area_and_by_smaller_side() -> None:
    boxes = torch.tensor([[0.0, 0.0, 2.0, 50.0], [0.0, 0.0, 100.0, 50.0], [0.0, 0.0, 200.0, 1.0]])
    image_hw = (100.0, 200.0)  # normalized: (0.01 x 0.5), (0.5 x 0.5), (1.0 x 0.01)
    assert small_box_mask(boxes, image_hw, 0.01, "area").tolist() == [True, False, False]
    assert small_box_mask(boxes, image_hw, 0.011, "area").tolist() == [True, False, True]
    assert small_box_mask(boxes, image_hw, 0.02, "width").tolist() == [True, False, True]
    assert small_box_mask(boxes, image_hw, 0.005, "width").tolist() == [False, False, False]
    with pytest.raises(ValueError, match="measure"):
        small_box_mask(boxes, image_hw, 0.1, "height")


def test_small_object_weights_scale_only_small_anchors_rows() -> None:
    scores = torch.tensor([[[0.2, 0.0], [0.0, 0.6], [0.0, 0.0]]])
    small = torch.tensor([[True, False, True]])
    expected = torch.tensor([[[0.6, 0.0], [0.0, 0.6], [0.0, 0.0]]])
    torch.testing.assert_close(small_object_weights(scores, small, 3.0), expected)
