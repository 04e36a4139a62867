"""The localization report on hand-made boxes: found / IoU shares and the median errors, per class."""

from __future__ import annotations

import numpy as np
import pytest

from client.progress import localization_table
from worker.mining.localization import LocalizationAccumulator

NAMES = ["stem", "blob", "unused"]


def test_each_ground_truth_box_is_scored_by_its_best_same_class_prediction() -> None:
    acc = LocalizationAccumulator(3, conf=0.25)
    gt = np.array([[10, 0, 11, 40], [30, 0, 31, 40], [50, 0, 51, 40], [0, 50, 20, 70]], dtype=float)
    gt_cls = np.array([0, 0, 0, 1])
    pred = np.array(
        [
            [9.75, 0, 11.25, 40],  # stem 1: 1.5 px wide on 1 px, same centre: IoU 0.667
            [30.5, 0, 31.5, 40],  # stem 2: shifted by half a pixel: IoU 0.333
            [30, 0, 31, 40],  # ... and exactly, but below conf: ignored
            [0, 50, 20, 70],  # the blob, but predicted as a stem: no same-class match for the blob
            [50, 0, 51, 40],  # a blob where stem 3 is: wrong class
        ]
    )
    acc.add(gt, gt_cls, pred, np.array([0, 0, 0, 0, 1]), np.array([0.9, 0.8, 0.1, 0.9, 0.9]))
    report = acc.result(NAMES)
    stem, blob, unused = report["per_class"]
    assert stem["instances"] == 3 and stem["found"] == pytest.approx(2 / 3, abs=1e-4)
    assert stem["iou_0.5"] == pytest.approx(1 / 3, abs=1e-4) and stem["iou_0.75"] == 0.0
    assert stem["median_width_error_px"] == pytest.approx(0.25)  # +0.5 and 0.0
    assert stem["median_centre_error_px"] == pytest.approx(0.25)  # 0.0 and 0.5
    assert stem["median_gt_width_px"] == 1.0
    assert blob["found"] == 0.0 and blob["median_width_error_px"] is None
    assert unused["instances"] == 0 and unused["found"] is None

    table = localization_table(report)
    assert "stem" in table and "67%" in table and "unused" not in table


def test_images_add_up() -> None:
    acc = LocalizationAccumulator(1)
    box = np.array([[0, 0, 10, 10]], dtype=float)
    acc.add(box, np.array([0]), box, np.array([0]), np.array([0.9]))
    acc.add(box, np.array([0]), np.zeros((0, 4)), np.array([]), np.array([]))
    row = acc.result(["a"])["per_class"][0]
    assert (row["instances"], row["found"], row["iou_0.75"], row["median_iou_found"]) == (2, 0.5, 0.5, 1.0)
