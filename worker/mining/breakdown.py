"""Error breakdown in the spirit of TIDE (Bolya et al., 2020): every false positive is a
classification, localization, both, duplicate or background error, every ground truth nobody
found is missed; for each kind, the mAP50 that fixing it (alone) would recover.

Pure NumPy. Fixes as TIDE makes them: a classification or localization error becomes a true
positive of its target ground truth (when nothing found it yet, else it is dropped); both,
duplicate and background errors are dropped; missed ground truth is taken out of the count (a
class whose every object was missed then has nothing left to find and counts as AP 1.0).
dAP overall is the mean over classes with ground truth, like mAP."""

from __future__ import annotations

import numpy as np

from worker.mining.matching import box_iou, confidence_order, greedy_match

TP, CLASSIFICATION, LOCALIZATION, BOTH, DUPLICATE, BACKGROUND, MISSED = range(7)
ERROR_NAMES = {
    CLASSIFICATION: "classification",
    LOCALIZATION: "localization",
    BOTH: "both",
    DUPLICATE: "duplicate",
    BACKGROUND: "background",
    MISSED: "missed",
}
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def classify_errors(
    gt_boxes: np.ndarray,
    gt_cls: np.ndarray,
    pred_boxes: np.ndarray,
    pred_cls: np.ndarray,
    pred_conf: np.ndarray,
    iou_thr: float,
    background_iou: float = 0.1,
    iou: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One image: (error code per prediction, target ground truth per prediction (-1: none),
    ground truth found (bool), ground truth missed (bool)). ``iou``: the (pred, gt) IoU matrix if known."""
    gt_cls = np.asarray(gt_cls).astype(np.int64).reshape(-1)
    pred_cls = np.asarray(pred_cls).astype(np.int64).reshape(-1)
    n, m = len(pred_cls), len(gt_cls)
    iou = box_iou(pred_boxes, gt_boxes) if iou is None else iou
    same = pred_cls[:, None] == gt_cls[None, :]
    pred_to_gt, gt_to_pred = greedy_match(iou, same, confidence_order(pred_conf), iou_thr)
    errors = np.full(n, BACKGROUND, dtype=np.int64)
    target = np.full(n, -1, dtype=np.int64)
    errors[pred_to_gt >= 0] = TP
    if m:
        iou_same, iou_other = np.where(same, iou, 0.0), np.where(same, 0.0, iou)
        best_same, best_other = iou_same.max(axis=1), iou_other.max(axis=1)
        left = pred_to_gt < 0
        for code, hit, source in (
            (DUPLICATE, best_same >= iou_thr, None),
            (CLASSIFICATION, best_other >= iou_thr, iou_other),
            (LOCALIZATION, best_same >= background_iou, iou_same),
            (BOTH, best_other >= background_iou, None),
        ):
            chosen = left & hit
            errors[chosen] = code
            if source is not None:
                target[chosen] = source.argmax(axis=1)[chosen]
            left &= ~chosen
    found = gt_to_pred >= 0
    covered = np.zeros(m, dtype=bool)
    covered[target[target >= 0]] = True
    return errors, target, found, ~found & ~covered


def average_precision(conf: np.ndarray, tp: np.ndarray, positives: int) -> float:
    """COCO's 101-point interpolated AP of one class; NaN without positives."""
    if positives <= 0:
        return float("nan")
    if conf.size == 0:
        return 0.0
    order = confidence_order(conf)
    hits = tp[order].astype(np.float64)
    true_pos, false_pos = np.cumsum(hits), np.cumsum(1.0 - hits)
    recall = true_pos / positives
    precision = np.maximum.accumulate((true_pos / (true_pos + false_pos))[::-1])[::-1]
    index = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.where(index < len(precision), precision[np.minimum(index, len(precision) - 1)], 0.0)
    return float(sampled.mean())


class BreakdownAccumulator:
    """Collects images one at a time; ``result`` gives the breakdown overall and per class.

    dAP uses every prediction given (as AP does); the error counts only those at or above
    ``count_conf``, matched again among themselves, which is what a user sees at that threshold."""

    def __init__(self, num_classes: int, iou_thr: float = 0.5, count_conf: float = 0.25, background_iou: float = 0.1):
        self.num_classes, self.iou_thr, self.count_conf, self.background_iou = (
            num_classes,
            iou_thr,
            count_conf,
            background_iou,
        )
        self._pred: list[tuple] = []
        self._gt: list[tuple] = []
        self._counts = np.zeros((num_classes, len(ERROR_NAMES) + 1), dtype=np.int64)
        self._gt_offset = 0

    def add(self, gt_boxes, gt_cls, pred_boxes, pred_cls, pred_conf, iou: np.ndarray | None = None) -> None:
        gt_cls = np.asarray(gt_cls).astype(np.int64).reshape(-1)
        pred_cls = np.asarray(pred_cls).astype(np.int64).reshape(-1)
        pred_conf = np.asarray(pred_conf, dtype=np.float64).reshape(-1)
        pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
        iou = box_iou(pred_boxes, gt_boxes) if iou is None else iou
        errors, target, found, missed = classify_errors(
            gt_boxes, gt_cls, pred_boxes, pred_cls, pred_conf, self.iou_thr, self.background_iou, iou
        )
        global_target = np.where(target >= 0, target + self._gt_offset, -1)
        self._pred.append((pred_cls, pred_conf, errors, global_target))
        self._gt.append((gt_cls, found, missed))
        self._gt_offset += len(gt_cls)
        shown = pred_conf >= self.count_conf
        errors, _, _, missed = classify_errors(
            gt_boxes,
            gt_cls,
            pred_boxes[shown],
            pred_cls[shown],
            pred_conf[shown],
            self.iou_thr,
            self.background_iou,
            iou[shown],
        )
        np.add.at(self._counts, (pred_cls[shown], errors), 1)
        np.add.at(self._counts, (gt_cls[missed], MISSED), 1)

    def _class_aps(self, cls, conf, tp, keep, positives) -> np.ndarray:
        return np.array(
            [
                average_precision(conf[keep & (cls == c)], tp[keep & (cls == c)], positives[c])
                for c in range(self.num_classes)
            ]
        )

    def result(self, names: list[str]) -> dict:
        empty = np.zeros(0, dtype=np.int64)
        cls = np.concatenate([p[0] for p in self._pred]) if self._pred else empty
        conf = np.concatenate([p[1] for p in self._pred]) if self._pred else empty.astype(float)
        errors = np.concatenate([p[2] for p in self._pred]) if self._pred else empty
        target = np.concatenate([p[3] for p in self._pred]) if self._pred else empty
        gt_cls = np.concatenate([g[0] for g in self._gt]) if self._gt else empty
        gt_found = np.concatenate([g[1] for g in self._gt]) if self._gt else empty.astype(bool)
        gt_missed = np.concatenate([g[2] for g in self._gt]) if self._gt else empty.astype(bool)
        positives = np.bincount(gt_cls, minlength=self.num_classes)
        keep_all = np.ones(len(cls), dtype=bool)
        base = self._class_aps(cls, conf, errors == TP, keep_all, positives)
        deltas = {}
        for code in ERROR_NAMES:
            fixed_cls, tp, keep, fixed_positives = cls.copy(), errors == TP, keep_all.copy(), positives.copy()
            if code == MISSED:
                fixed_positives -= np.bincount(gt_cls[gt_missed], minlength=self.num_classes)
            elif code in (CLASSIFICATION, LOCALIZATION):
                claimed = gt_found.copy()
                for p in confidence_order(conf):
                    if errors[p] != code:
                        continue
                    g = target[p]
                    if claimed[g]:
                        keep[p] = False
                    else:
                        claimed[g], tp[p], fixed_cls[p] = True, True, gt_cls[g]
            else:
                keep &= errors != code
            fixed = self._class_aps(fixed_cls, conf, tp, keep, fixed_positives)
            with np.errstate(invalid="ignore"):
                deltas[code] = np.where(np.isnan(base), np.nan, np.nan_to_num(fixed, nan=1.0) - base)
        present = positives > 0
        overall_map = float(np.mean(base[present])) if present.any() else None
        per_class = []
        for c, name in enumerate(names):
            per_class.append(
                {
                    "class_id": c,
                    "name": name,
                    "instances": int(positives[c]),
                    "mAP50": _num(base[c]),
                    "errors": {
                        ERROR_NAMES[code]: {"count": int(self._counts[c, code]), "dAP50": _num(deltas[code][c])}
                        for code in ERROR_NAMES
                    },
                }
            )
        return {
            "iou": self.iou_thr,
            "count_conf": self.count_conf,
            "background_iou": self.background_iou,
            "mAP50": _num(overall_map),
            "overall": {
                ERROR_NAMES[code]: {
                    "count": int(self._counts[:, code].sum()),
                    "dAP50": _num(float(np.mean(deltas[code][present])) if present.any() else None),
                }
                for code in ERROR_NAMES
            },
            "per_class": per_class,
        }


def _num(value) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), 6)
