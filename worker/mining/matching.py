"""Class-aware matching of one image's predictions to its ground truth, every object given one kind.

Pure NumPy. Boxes are ``xyxy`` in one coordinate space (IoU does not depend on which). Matching is
COCO's: predictions in descending confidence (stable order on ties), each takes the still unmatched
ground truth of its class with the highest IoU at or above the threshold (the later one on an exact
IoU tie, as pycocotools does)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MATCHED = "matched"
FALSE_NEGATIVE = "false_negative"
LOW_CONFIDENCE = "low_confidence"
MISCLASSIFICATION = "misclassification"
HARD_NEGATIVE = "hard_negative"
DUPLICATE = "duplicate"
LOCALIZATION = "localization"
BACKGROUND = "background"
GT_KINDS = (MATCHED, FALSE_NEGATIVE, LOW_CONFIDENCE, MISCLASSIFICATION)
PRED_KINDS = (MATCHED, LOW_CONFIDENCE, MISCLASSIFICATION, DUPLICATE, LOCALIZATION, HARD_NEGATIVE, BACKGROUND)
UNUSED = ""
"""Kind of a prediction under the detection threshold that explains no ground truth: not reported."""
KIND_DTYPE = "<U17"
"""Kinds are fixed-width strings: NumPy compares them in C, unlike Python objects."""


@dataclass(frozen=True)
class Thresholds:
    """``conf``: a prediction at or above it is a detection. ``min_conf``..``conf``: a same-class
    prediction there makes its ground truth a low-confidence detection rather than a miss.
    ``background_iou``: a detection overlapping every ground truth less than this is on background."""

    conf: float = 0.5
    iou: float = 0.5
    low_conf: float = 0.3
    min_conf: float = 0.1
    hard_negative_conf: float = 0.5
    background_iou: float = 0.1


@dataclass
class ImageMatch:
    """Per ground truth and per prediction: kind, the object on the other side (-1: none), its IoU."""

    gt_kind: np.ndarray
    gt_other: np.ndarray
    gt_iou: np.ndarray
    pred_kind: np.ndarray
    pred_other: np.ndarray
    pred_iou: np.ndarray


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4), xyxy: an (n, m) array."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def confidence_order(conf: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(conf, dtype=np.float64), kind="mergesort")


def greedy_match(
    iou: np.ndarray, allowed: np.ndarray, order: np.ndarray, threshold: float, gt_taken: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """COCO greedy matching. ``allowed`` (n, m) says which pairs may match at all (same class, ...);
    ``order`` is the predictions to try, best first. Returns (pred -> gt, gt -> pred), -1 unmatched.
    Ground truths already ``gt_taken`` are not available."""
    n, m = iou.shape
    pred_to_gt = np.full(n, -1, dtype=np.int64)
    gt_to_pred = np.full(m, -1, dtype=np.int64)
    taken = np.zeros(m, dtype=bool) if gt_taken is None else gt_taken.copy()
    candidates = allowed & (iou >= threshold)
    for p in order[candidates[order].any(axis=1)]:  # only predictions that can match anything are visited
        free = candidates[p] & ~taken
        if not free.any():
            continue
        scores = np.where(free, iou[p], -1.0)
        g = m - 1 - int(np.argmax(scores[::-1]))  # the last of equal best IoUs, like pycocotools
        pred_to_gt[p], gt_to_pred[g] = g, p
        taken[g] = True
    return pred_to_gt, gt_to_pred


def match_image(
    gt_boxes: np.ndarray,
    gt_cls: np.ndarray,
    pred_boxes: np.ndarray,
    pred_cls: np.ndarray,
    pred_conf: np.ndarray,
    t: Thresholds,
    iou: np.ndarray | None = None,
) -> ImageMatch:
    """Give every ground truth and every prediction of one image exactly one kind.

    In order: detections (conf >= t.conf) matched to ground truth of their class; other detections
    on an already matched ground truth of their class are duplicates; unmatched ground truth found by
    a same-class prediction in [t.min_conf, t.conf) is a low-confidence detection; unmatched ground
    truth covered (IoU >= t.iou) by a detection of another class is a misclassification (and so is a
    detection of another class on a ground truth found by its own class); the rest is a false negative. Detections left over overlap some ground truth a little (localization) or none
    (hard negative when conf >= t.hard_negative_conf, else background). ``iou``: the (pred, gt) IoU
    matrix when the caller already has it."""
    gt_cls = np.asarray(gt_cls).astype(np.int64).reshape(-1)
    pred_cls = np.asarray(pred_cls).astype(np.int64).reshape(-1)
    pred_conf = np.asarray(pred_conf, dtype=np.float64).reshape(-1)
    n, m = len(pred_cls), len(gt_cls)
    iou = box_iou(pred_boxes, gt_boxes) if iou is None else iou
    same = pred_cls[:, None] == gt_cls[None, :]
    order = confidence_order(pred_conf)
    detection = pred_conf >= t.conf

    gt_kind = np.full(m, FALSE_NEGATIVE, dtype=KIND_DTYPE)
    gt_other = np.full(m, -1, dtype=np.int64)
    pred_kind = np.full(n, UNUSED, dtype=KIND_DTYPE)
    pred_other = np.full(n, -1, dtype=np.int64)

    pred_to_gt, gt_to_pred = greedy_match(iou, same & detection[:, None], order, t.iou)
    gt_kind[gt_to_pred >= 0] = MATCHED
    gt_other[:] = gt_to_pred
    pred_kind[pred_to_gt >= 0] = MATCHED
    pred_other[:] = pred_to_gt
    matched_gt = gt_to_pred >= 0

    same_hit = np.where(same & (iou >= t.iou), iou, -1.0)
    best_same = same_hit.argmax(axis=1) if m else np.zeros(n, dtype=np.int64)
    duplicate = detection & (pred_to_gt < 0) & (same_hit.max(axis=1, initial=-1.0) >= 0)
    pred_kind[duplicate] = DUPLICATE
    pred_other[duplicate] = best_same[duplicate]

    low = (pred_conf >= t.min_conf) & ~detection
    low_to_gt, gt_to_low = greedy_match(iou, same & low[:, None], order, t.iou, gt_taken=matched_gt)
    gt_kind[gt_to_low >= 0] = LOW_CONFIDENCE
    gt_other[gt_to_low >= 0] = gt_to_low[gt_to_low >= 0]
    pred_kind[low_to_gt >= 0] = LOW_CONFIDENCE
    pred_other[low_to_gt >= 0] = low_to_gt[low_to_gt >= 0]

    free_detection = detection & (pred_kind == UNUSED)
    other_hit = np.where(~same & free_detection[:, None] & (iou >= t.iou), iou, -1.0)
    open_gt = gt_kind == FALSE_NEGATIVE
    if n and m:
        best_pred = other_hit.argmax(axis=0)
        confused = open_gt & (other_hit.max(axis=0) >= 0)
        gt_kind[confused] = MISCLASSIFICATION
        gt_other[confused] = best_pred[confused]
        cover = np.where(confused[None, :], other_hit, -1.0)
        confusing = cover.max(axis=1) >= 0
        pred_kind[confusing] = MISCLASSIFICATION
        pred_other[confusing] = cover.argmax(axis=1)[confusing]
        wrong_class_extra = (pred_kind == UNUSED) & (other_hit.max(axis=1) >= 0)  # on an object already found
        pred_kind[wrong_class_extra] = MISCLASSIFICATION
        pred_other[wrong_class_extra] = other_hit.argmax(axis=1)[wrong_class_extra]

    rest = detection & (pred_kind == UNUSED)
    overlap = iou.max(axis=1, initial=0.0)
    nearest = iou.argmax(axis=1) if m else np.zeros(n, dtype=np.int64)
    localization = rest & (overlap >= t.background_iou)
    pred_kind[localization] = LOCALIZATION
    pred_other[localization] = nearest[localization]
    on_background = rest & ~localization
    pred_kind[on_background & (pred_conf >= t.hard_negative_conf)] = HARD_NEGATIVE
    pred_kind[on_background & (pred_conf < t.hard_negative_conf)] = BACKGROUND

    gt_iou = np.where(gt_other >= 0, iou[gt_other.clip(0), np.arange(m)] if n else 0.0, 0.0)
    pred_iou = np.where(pred_other >= 0, iou[np.arange(n), pred_other.clip(0)] if m else 0.0, overlap)
    return ImageMatch(gt_kind, gt_other, gt_iou, pred_kind, pred_other, pred_iou)
