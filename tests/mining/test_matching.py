"""Hand-built images, one per kind, and the tie cases; every number here is worked out by hand."""

import numpy as np
import pytest

from worker.mining import matching as k
from worker.mining.difficulty import image_difficulty, object_difficulties

T = k.Thresholds(conf=0.5, iou=0.5, low_conf=0.3, min_conf=0.1, hard_negative_conf=0.5)
A = [0, 0, 10, 10]
B = [20, 20, 30, 30]


def run(gt, gt_cls, pred, pred_cls, conf, t=T):
    gt = np.array(gt, dtype=float).reshape(-1, 4)
    pred = np.array(pred, dtype=float).reshape(-1, 4)
    return k.match_image(gt, gt_cls, pred, pred_cls, np.array(conf, dtype=float), t)


def test_box_iou_by_hand():
    iou = k.box_iou(np.array([A]), np.array([[5, 0, 15, 10], A, [10, 10, 20, 20]]))
    assert iou.tolist() == [[pytest.approx(50 / 150), 1.0, 0.0]]


def test_matched():
    m = run([A], [0], [A], [0], [0.9])
    assert m.gt_kind.tolist() == ["matched"] and m.pred_kind.tolist() == ["matched"]
    assert m.gt_other.tolist() == [0] and m.gt_iou.tolist() == [1.0]


def test_false_negative_with_nothing_near():
    m = run([A], [0], [B], [0], [0.05])  # below min_conf: not even a low-confidence detection
    assert m.gt_kind.tolist() == ["false_negative"] and m.pred_kind.tolist() == [""]
    gt_d, pred_d = object_difficulties(m, np.array([0.05]), T.low_conf)
    assert gt_d.tolist() == [2.0] and pred_d.tolist() == [0.0]


def test_low_confidence_difficulty_is_one_plus_low_conf_minus_conf():
    m = run([A, B], [0, 1], [A, B], [0, 1], [0.2, 0.45])
    assert m.gt_kind.tolist() == ["low_confidence", "low_confidence"]
    gt_d, _ = object_difficulties(m, np.array([0.2, 0.45]), T.low_conf)
    assert gt_d.tolist() == [pytest.approx(1.1), pytest.approx(0.85)]
    assert image_difficulty(gt_d, "sum") == pytest.approx(1.95) and image_difficulty(gt_d, "max") == pytest.approx(1.1)


def test_misclassification():
    m = run([A], [0], [[0, 0, 10, 9]], [2], [0.8])  # IoU 0.9, wrong class
    assert m.gt_kind.tolist() == ["misclassification"] and m.pred_kind.tolist() == ["misclassification"]
    gt_d, pred_d = object_difficulties(m, np.array([0.8]), T.low_conf)
    assert gt_d.tolist() == [1.5] and pred_d.tolist() == [0.0]  # counted once, on the ground truth


def test_hard_negative_and_background():
    t = k.Thresholds(conf=0.4, hard_negative_conf=0.6, low_conf=0.3)
    m = run([A], [0], [A, B, [40, 40, 50, 50]], [0, 0, 1], [0.9, 0.7, 0.5], t)
    assert m.pred_kind.tolist() == ["matched", "hard_negative", "background"]
    _, pred_d = object_difficulties(m, np.array([0.9, 0.7, 0.5]), t.low_conf)
    assert pred_d.tolist() == [0.0, 1.5, 0.0]


def test_localization_is_a_detection_near_but_not_on_its_object():
    m = run([A], [0], [[5, 0, 15, 10]], [0], [0.9])  # IoU 1/3
    assert m.gt_kind.tolist() == ["false_negative"] and m.pred_kind.tolist() == ["localization"]
    assert m.pred_iou.tolist() == [pytest.approx(1 / 3)]


def test_tie_two_predictions_on_one_object():
    m = run([A], [0], [A, [0, 0, 10, 9]], [0, 0], [0.6, 0.9])
    assert m.pred_kind.tolist() == ["duplicate", "matched"]  # the more confident one wins, not the better IoU
    assert m.gt_other.tolist() == [1] and m.pred_other.tolist() == [0, 0]


def test_tie_equal_confidence_keeps_input_order():
    m = run([A], [0], [A, A], [0, 0], [0.7, 0.7])
    assert m.pred_kind.tolist() == ["matched", "duplicate"]


def test_tie_one_prediction_on_two_objects():
    # one box over two ground truths of its class: IoU 100/110 with the first, 110/120 with the second
    m = run([[0, 0, 10, 10], [0, 0, 10, 12]], [0, 0], [[0, 0, 10, 11]], [0], [0.9])
    assert m.gt_kind.tolist() == ["false_negative", "matched"]
    assert m.pred_other.tolist() == [1] and m.pred_iou.tolist() == [pytest.approx(110 / 120)]


def test_equal_iou_tie_goes_to_the_later_ground_truth_like_pycocotools():
    m = run([[0, 0, 10, 10], [0, 0, 10, 10]], [0, 0], [A], [0], [0.9])
    assert m.gt_kind.tolist() == ["false_negative", "matched"]


def test_misclassifying_prediction_covering_two_objects_is_one_object():
    m = run([A, [0, 0, 10, 11]], [0, 0], [[0, 0, 10, 10.5]], [1], [0.9])
    assert m.gt_kind.tolist() == ["misclassification", "misclassification"]
    assert m.pred_kind.tolist() == ["misclassification"]


def test_every_object_gets_exactly_one_kind_on_a_busy_image():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 80, size=(30, 2))
    gt = np.concatenate([xy, xy + rng.uniform(5, 20, size=(30, 2))], axis=1)
    pred = gt[rng.integers(0, 30, 40)] + rng.normal(0, 2, size=(40, 4))
    m = k.match_image(gt, rng.integers(0, 3, 30), pred, rng.integers(0, 3, 40), rng.uniform(0, 1, 40), T)
    assert set(m.gt_kind) <= set(k.GT_KINDS) and set(m.pred_kind) <= {*k.PRED_KINDS, k.UNUSED}
    matched_gt = np.flatnonzero(m.gt_kind == "matched")
    assert sorted(m.gt_other[matched_gt]) == sorted(np.flatnonzero(m.pred_kind == "matched"))


def test_empty_images():
    m = run([], [], [], [], [])
    assert m.gt_kind.size == 0 and m.pred_kind.size == 0
    m = run([], [], [A], [0], [0.9])
    assert m.pred_kind.tolist() == ["hard_negative"]
    m = run([A], [0], [], [], [])
    assert m.gt_kind.tolist() == ["false_negative"]


def test_wrong_class_box_on_an_object_already_found_is_an_extra_misclassification():
    m = run([A], [0], [A, [0, 0, 10, 9]], [0, 1], [0.9, 0.8])
    assert m.gt_kind.tolist() == ["matched"] and m.pred_kind.tolist() == ["matched", "misclassification"]
    assert m.pred_other.tolist() == [0, 0]
    _, pred_d = object_difficulties(m, np.array([0.9, 0.8]), T.low_conf)
    assert pred_d.tolist() == [0.0, 0.5]
