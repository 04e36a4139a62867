"""How hard an object and an image are, from the kinds ``matching`` gave them."""

from __future__ import annotations

import numpy as np

from worker.mining import matching as k

FIXED_DIFFICULTY = {
    k.FALSE_NEGATIVE: 2.0,
    k.MISCLASSIFICATION: 1.5,
    k.HARD_NEGATIVE: 1.5,  # seed 001: a confident detection on background is worth training on
    k.DUPLICATE: 0.5,
}
"""Kinds not listed (matched, localization, background, unused) add nothing. A misclassification
counts once, on its ground truth; the prediction that confused it adds nothing more."""
EXTRA_WRONG_CLASS_DIFFICULTY = 0.5
"""A wrong-class detection on an object its own class already found: an extra box, like a duplicate."""


def low_confidence_difficulty(conf: float | np.ndarray, low_conf: float) -> float | np.ndarray:
    """1.0 + (low_conf - conf): 1.0 at ``low_conf``, more for fainter detections, less for nearly found ones."""
    return 1.0 + (low_conf - conf)


def _fixed(kinds: np.ndarray) -> np.ndarray:
    values = np.zeros(len(kinds), dtype=np.float64)
    for kind, value in FIXED_DIFFICULTY.items():
        values[kinds == kind] = value
    return values


def object_difficulties(match: k.ImageMatch, pred_conf: np.ndarray, low_conf: float) -> tuple[np.ndarray, np.ndarray]:
    """(per ground truth, per prediction) difficulty of one image's objects."""
    gt = _fixed(match.gt_kind)
    low = match.gt_kind == k.LOW_CONFIDENCE
    if low.any():
        gt[low] = low_confidence_difficulty(np.asarray(pred_conf)[match.gt_other[low]], low_conf)
    pred = _fixed(match.pred_kind)
    confusing = match.pred_kind == k.MISCLASSIFICATION
    pred[confusing] = 0.0
    extra = confusing.copy()
    extra[confusing] = match.gt_kind[match.pred_other[confusing]] != k.MISCLASSIFICATION
    pred[extra] = EXTRA_WRONG_CLASS_DIFFICULTY
    return gt, pred


def image_difficulty(values: np.ndarray, reduction: str) -> float:
    """An image's difficulty: the ``sum`` or the ``max`` of its objects' (0.0 with none)."""
    if values.size == 0:
        return 0.0
    if reduction == "sum":
        return float(values.sum())
    if reduction == "max":
        return float(values.max())
    raise ValueError(f"unknown reduction {reduction!r}")
