"""Our matching against pycocotools' per-image matching, on a synthetic set with planted errors:
misses, shifted boxes, swapped classes, duplicates and background false positives."""

import contextlib
import io

import numpy as np
import pytest

from worker.mining import matching as k
from worker.mining.breakdown import TP, classify_errors

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

NUM_CLASSES = 3
IOU = 0.5


def synthetic_set(seed: int = 7, images: int = 40):
    """Per image: ground truth (boxes, classes) and predictions (boxes, classes, confidences), xyxy."""
    rng = np.random.default_rng(seed)
    data = []
    planted = {"missed": 0, "shifted": 0, "swapped": 0, "duplicate": 0, "background": 0}
    for _ in range(images):
        n = int(rng.integers(0, 8))
        xy = rng.uniform(0, 200, size=(n, 2))
        gt = np.concatenate([xy, xy + rng.uniform(8, 60, size=(n, 2))], axis=1)
        gt_cls = rng.integers(0, NUM_CLASSES, n)
        boxes, classes = [], []
        for box, cls in zip(gt, gt_cls, strict=True):
            fate = rng.uniform()
            w, h = box[2] - box[0], box[3] - box[1]
            if fate < 0.15:
                planted["missed"] += 1
                continue
            if fate < 0.35:
                planted["shifted"] += 1
                shift = rng.uniform(0.1, 0.6) * np.array([w, h])
                boxes.append(box + np.concatenate([shift, shift]))
                classes.append(cls)
                continue
            jitter = rng.normal(0, 0.03, 4) * np.array([w, h, w, h])
            if fate < 0.5:
                planted["swapped"] += 1
                boxes.append(box + jitter)
                classes.append((cls + 1) % NUM_CLASSES)
                continue
            boxes.append(box + jitter)
            classes.append(cls)
            if fate > 0.9:
                planted["duplicate"] += 1
                boxes.append(box + rng.normal(0, 0.08, 4) * np.array([w, h, w, h]))
                classes.append(cls)
        for _ in range(int(rng.integers(0, 3))):
            planted["background"] += 1
            corner = rng.uniform(0, 220, 2)
            boxes.append(np.concatenate([corner, corner + rng.uniform(5, 30, 2)]))
            classes.append(int(rng.integers(0, NUM_CLASSES)))
        pred = np.array(boxes, dtype=float).reshape(-1, 4)
        conf = np.round(rng.uniform(0.05, 1.0, len(pred)), 3)  # rounded: some equal confidences (ties)
        data.append((gt, gt_cls, pred, np.array(classes, dtype=np.int64), conf))
    return data, planted


def coco_counts(data):
    """(tp, fp, fn) per class and the matched (image, pred, gt) triples, from pycocotools."""
    images, annotations, detections = [], [], []
    for image_id, (gt, gt_cls, pred, pred_cls, conf) in enumerate(data, start=1):
        images.append({"id": image_id, "width": 300, "height": 300})
        for g, (box, cls) in enumerate(zip(gt, gt_cls, strict=True)):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": image_id * 1000 + g + 1,
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        for p, (box, cls, score) in enumerate(zip(pred, pred_cls, conf, strict=True)):
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                    "score": float(score),
                    "pred_index": p,
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {
            "info": {},
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c + 1, "name": str(c)} for c in range(NUM_CLASSES)],
        }
        coco.createIndex()
        results = coco.loadRes(detections)
        evaluator = COCOeval(coco, results, "bbox")
        evaluator.params.iouThrs = np.array([IOU])
        evaluator.params.maxDets = [1000]
        evaluator.params.areaRng = [[0, 1e10]]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.evaluate()
    counts = np.zeros((NUM_CLASSES, 3), dtype=int)
    pairs = set()
    for entry in evaluator.evalImgs:
        if entry is None:
            continue
        c = entry["category_id"] - 1
        matches = entry["dtMatches"][0]
        counts[c, 0] += int((matches > 0).sum())
        counts[c, 1] += int((matches == 0).sum())
        counts[c, 2] += int((entry["gtMatches"][0] == 0).sum())
        for dt_id, gt_id in zip(entry["dtIds"], matches, strict=True):
            if gt_id > 0:
                pred_index = results.anns[dt_id]["pred_index"]
                pairs.add((entry["image_id"] - 1, pred_index, int(gt_id) % 1000 - 1))
    return counts, pairs


def test_planted_errors_are_all_there():
    _, planted = synthetic_set()
    assert all(n >= 5 for n in planted.values()), planted


def test_match_image_agrees_with_pycocotools():
    data, _ = synthetic_set()
    expected, expected_pairs = coco_counts(data)
    counts = np.zeros((NUM_CLASSES, 3), dtype=int)
    pairs = set()
    everything = k.Thresholds(conf=0.0, iou=IOU, low_conf=0.0, min_conf=0.0, hard_negative_conf=0.0)
    for image, (gt, gt_cls, pred, pred_cls, conf) in enumerate(data):
        m = k.match_image(gt, gt_cls, pred, pred_cls, conf, everything)
        matched = m.pred_kind == k.MATCHED
        np.add.at(counts[:, 0], pred_cls[matched], 1)
        np.add.at(counts[:, 1], pred_cls[~matched], 1)
        np.add.at(counts[:, 2], gt_cls[m.gt_kind != k.MATCHED], 1)
        pairs.update((image, int(p), int(m.pred_other[p])) for p in np.flatnonzero(matched))
    assert counts.tolist() == expected.tolist()
    assert pairs == expected_pairs
    assert counts[:, 1].sum() > 0 and counts[:, 2].sum() > 0


def test_breakdown_true_positives_agree_with_pycocotools():
    data, _ = synthetic_set(seed=11)
    expected, _ = coco_counts(data)
    counts = np.zeros((NUM_CLASSES, 3), dtype=int)
    for gt, gt_cls, pred, pred_cls, conf in data:
        errors, _, found, _ = classify_errors(gt, gt_cls, pred, pred_cls, conf, IOU)
        np.add.at(counts[:, 0], pred_cls[errors == TP], 1)
        np.add.at(counts[:, 1], pred_cls[errors != TP], 1)
        np.add.at(counts[:, 2], gt_cls[~found], 1)
    assert counts.tolist() == expected.tolist()
