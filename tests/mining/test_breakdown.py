"""The TIDE-like breakdown on images whose AP and fixes are worked out by hand."""

import numpy as np
import pytest

from worker.mining.breakdown import BreakdownAccumulator, average_precision

A = [0, 0, 10, 10]
B = [20, 20, 30, 30]
C = [40, 40, 50, 50]


def approx(value):
    return pytest.approx(value, abs=1e-6)  # results are rounded to 6 decimals


def test_average_precision_101_points():
    # ranked TP, FP, TP with 2 positives: precision envelope 1.0 up to recall 0.5, 2/3 up to 1.0
    ap = average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 2)
    assert ap == approx((51 * 1.0 + 50 * 2 / 3) / 101)
    assert average_precision(np.zeros(0), np.zeros(0, dtype=bool), 3) == 0.0
    assert np.isnan(average_precision(np.zeros(0), np.zeros(0, dtype=bool), 0))


def add(acc, gt, gt_cls, pred, pred_cls, conf):
    acc.add(np.array(gt, float).reshape(-1, 4), gt_cls, np.array(pred, float).reshape(-1, 4), pred_cls, conf)


def test_each_error_kind_and_what_fixing_it_recovers():
    acc = BreakdownAccumulator(2, iou_thr=0.5, count_conf=0.0)
    # class 0: A found (0.9); a background FP at 0.95 above it; B missed entirely
    add(acc, [A, B], [0, 0], [A, C], [0, 0], [0.9, 0.95])
    # class 1: its object predicted as class 0 (classification error) at 0.8
    add(acc, [A], [1], [A], [0], [0.8])
    result = acc.result(["a", "b"])
    per_class = {c["name"]: c for c in result["per_class"]}
    # class 0 ranks: FP 0.95, TP 0.9, FP 0.8 (the misclassified box); 2 positives -> precision 1/2 to recall 0.5
    assert per_class["a"]["mAP50"] == approx(51 * 0.5 / 101)
    assert per_class["b"]["mAP50"] == 0.0
    errors = result["overall"]
    assert {name: e["count"] for name, e in errors.items()} == {
        "classification": 1,
        "localization": 0,
        "both": 0,
        "duplicate": 0,
        "background": 1,
        "missed": 1,
    }
    # fixing background: class 0 ranks TP 0.9, FP 0.8 -> AP 51/101; fixing missed: 1 positive -> AP 0.5
    assert per_class["a"]["errors"]["background"]["dAP50"] == approx(51 / 101 - 51 * 0.5 / 101)
    assert per_class["a"]["errors"]["missed"]["dAP50"] == approx(0.5 - 51 * 0.5 / 101)
    # fixing classification: the 0.8 box becomes class 1's true positive -> class 1 AP 1.0, class 0 loses an FP
    assert per_class["b"]["errors"]["classification"]["dAP50"] == approx(1.0)
    assert per_class["a"]["errors"]["classification"]["dAP50"] == approx(0.0)
    assert result["mAP50"] == approx((51 * 0.5 / 101 + 0.0) / 2)
    assert errors["classification"]["dAP50"] == approx(0.5)


def test_localization_both_and_duplicate():
    acc = BreakdownAccumulator(2, iou_thr=0.5, count_conf=0.0)
    shifted = [5, 0, 15, 10]  # IoU 1/3 with A
    add(acc, [A, B], [0, 1], [A, A, shifted, [25, 20, 35, 30]], [0, 0, 1, 0], [0.9, 0.8, 0.7, 0.6])
    kinds = {name: e["count"] for name, e in acc.result(["a", "b"])["overall"].items()}
    # A found; second box on A duplicate; class-1 box near A 'both'; class-0 box near B (IoU 1/3) 'both' too
    assert kinds == {"classification": 0, "localization": 0, "both": 2, "duplicate": 1, "background": 0, "missed": 1}


def test_counts_use_only_confident_predictions():
    acc = BreakdownAccumulator(1, iou_thr=0.5, count_conf=0.5)
    add(acc, [A], [0], [A, C], [0, 0], [0.3, 0.9])
    counts = {name: e["count"] for name, e in acc.result(["a"])["overall"].items()}
    assert counts["missed"] == 1 and counts["background"] == 1  # the 0.3 box is not shown at conf 0.5
    assert acc.result(["a"])["per_class"][0]["mAP50"] == approx(0.5)  # AP uses it: FP 0.9, TP 0.3
