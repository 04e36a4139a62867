"""The localization report: does a class lose AP to detection (no box near the object) or to localization
(a box, but off by a pixel)? Per class, each ground-truth box is matched to its best same-class prediction
(highest IoU) among those at ``conf`` or above, without one-to-one assignment: the question is how close the
model's best attempt came. Errors are in original-image pixels, over the boxes found at all (IoU > 0)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

THRESHOLDS = (0.5, 0.75)
LOCALIZATION_CONF = 0.25


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box in ``a`` (n, 4) with every box in ``b`` (m, 4)."""
    left_top = np.maximum(a[:, None, :2], b[None, :, :2])
    right_bottom = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(right_bottom - left_top, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 4) if values else None


def _share(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


class LocalizationAccumulator:
    """Fed image by image (``add``), read once (``result``)."""

    def __init__(self, nc: int, conf: float = LOCALIZATION_CONF):
        self.nc, self.conf = nc, conf
        self.gt = [0] * nc
        self.found = [0] * nc
        self.at = {t: [0] * nc for t in THRESHOLDS}
        self.iou: list[list[float]] = [[] for _ in range(nc)]
        self.dw: list[list[float]] = [[] for _ in range(nc)]
        self.dh: list[list[float]] = [[] for _ in range(nc)]
        self.centre: list[list[float]] = [[] for _ in range(nc)]
        self.width: list[list[float]] = [[] for _ in range(nc)]

    def add(self, gt_boxes, gt_cls, pred_boxes, pred_cls, pred_conf) -> None:
        gt_boxes, gt_cls = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4), np.asarray(gt_cls).reshape(-1)
        keep = np.asarray(pred_conf).reshape(-1) >= self.conf
        pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)[keep]
        pred_cls = np.asarray(pred_cls).reshape(-1)[keep]
        for c in np.unique(gt_cls).astype(int):
            if not 0 <= c < self.nc:
                continue
            gts = gt_boxes[gt_cls == c]
            self.gt[c] += len(gts)
            self.width[c].extend((gts[:, 2] - gts[:, 0]).tolist())
            preds = pred_boxes[pred_cls == c]
            if not len(preds):
                continue
            ious = _iou_matrix(gts, preds)
            best = ious.argmax(1)
            best_iou = ious[np.arange(len(gts)), best]
            hit = best_iou > 0
            self.found[c] += int(hit.sum())
            for t in THRESHOLDS:
                self.at[t][c] += int((best_iou >= t).sum())
            matched, truth = preds[best[hit]], gts[hit]
            self.iou[c].extend(best_iou[hit].tolist())
            self.dw[c].extend(((matched[:, 2] - matched[:, 0]) - (truth[:, 2] - truth[:, 0])).tolist())
            self.dh[c].extend(((matched[:, 3] - matched[:, 1]) - (truth[:, 3] - truth[:, 1])).tolist())
            centre = ((matched[:, :2] + matched[:, 2:]) - (truth[:, :2] + truth[:, 2:])) / 2
            self.centre[c].extend(np.hypot(centre[:, 0], centre[:, 1]).tolist())

    def result(self, names: Sequence[str]) -> dict:
        per_class = []
        for c, name in enumerate(names):
            n = self.gt[c]
            per_class.append(
                {
                    "class_id": c,
                    "name": name,
                    "instances": n,
                    "median_gt_width_px": _median(self.width[c]),
                    "found": _share(self.found[c], n),
                    **{f"iou_{t:g}": _share(self.at[t][c], n) for t in THRESHOLDS},
                    "median_iou_found": _median(self.iou[c]),
                    "median_width_error_px": _median(self.dw[c]),
                    "median_abs_width_error_px": _median([abs(v) for v in self.dw[c]]),
                    "median_height_error_px": _median(self.dh[c]),
                    "median_centre_error_px": _median(self.centre[c]),
                }
            )
        return {
            "conf": self.conf,
            "matching": "each ground-truth box to its best same-class prediction (highest IoU) at conf or above",
            "per_class": per_class,
        }
