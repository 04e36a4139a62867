"""Weighted sampling maths by hand: image weights, the ramp per epoch, shares of draws, instances per epoch."""

from __future__ import annotations

import numpy as np
import pytest

from worker.ultralytics_ext.sampling_weights import (
    classes_per_image,
    draw_share,
    expected_instances,
    image_weights,
    instance_counts,
    ramp_fraction,
    ramped_weights,
)

# four images: {0, 0, 1}, {2}, {} (background), {1, 2}
LABELS = [np.array([[0.0], [0.0], [1.0]]), np.array([[2.0]]), np.zeros((0, 1)), np.array([[1.0], [2.0]])]
CLASS_WEIGHTS = [0.5, 2.0, 8.0]


def test_classes_and_counts() -> None:
    assert [c.tolist() for c in classes_per_image(LABELS)] == [[0, 1], [2], [], [1, 2]]
    assert instance_counts(LABELS, 3).tolist() == [2, 2, 2]
    assert instance_counts(LABELS, 4).tolist() == [2, 2, 2, 0]


def test_an_image_weighs_its_heaviest_class_and_background_the_lightest() -> None:
    weights = image_weights(classes_per_image(LABELS), CLASS_WEIGHTS)
    assert weights.tolist() == [2.0, 8.0, 0.5, 8.0]


@pytest.mark.parametrize(
    ("epoch", "fraction"), [(0, 0.0), (1, 0.25), (2, 0.5), (3, 0.75), (4, 1.0), (5, 1.0), (100, 1.0)]
)
def test_ramp_over_four_epochs(epoch: int, fraction: float) -> None:
    assert ramp_fraction(epoch, 4) == fraction
    # class weight 8 moves 1 -> 2.75 -> 4.5 -> 6.25 -> 8; weight 0.5 moves 1 -> 0.875 -> 0.75 -> 0.625 -> 0.5
    assert ramped_weights(np.array([8.0, 0.5]), epoch, 4).tolist() == pytest.approx(
        [1 + 7 * fraction, 1 - 0.5 * fraction]
    )


def test_no_ramp_means_full_weights_from_the_start() -> None:
    assert ramp_fraction(0, 0) == 1.0
    assert ramped_weights(np.array([8.0, 0.5]), 0, 0).tolist() == [8.0, 0.5]


def test_share_of_draws_and_instances_per_epoch_by_hand() -> None:
    present = classes_per_image(LABELS)
    weights = np.array([2.0, 8.0, 0.5, 8.0])  # total 18.5
    # class 0 is only in image 0 (2/18.5), class 1 in images 0 and 3 (10/18.5), class 2 in images 1 and 3 (16/18.5)
    assert draw_share(present, weights, 3).tolist() == pytest.approx([2 / 18.5, 10 / 18.5, 16 / 18.5])
    # 4 draws: class 0 has 2 instances in image 0 -> 4 * 2 * 2/18.5; class 1: 4 * (2 + 8)/18.5; class 2: 4 * 16/18.5
    assert expected_instances(LABELS, weights, 3).tolist() == pytest.approx([16 / 18.5, 40 / 18.5, 64 / 18.5])
    # uniform weights give back the dataset's own counts
    assert expected_instances(LABELS, np.ones(4), 3).tolist() == pytest.approx([2, 2, 2])
