"""Per-class tables from Ultralytics' detection metrics."""

from __future__ import annotations


def _num(value) -> float:
    return round(float(value), 6)


def detection_summary(det_metrics, names: list[str]) -> dict:
    """Overall and per-class precision, recall, mAP50 and mAP50-95 from a ``DetMetrics``.

    Classes with no ground truth in the split get ``None`` figures rather than a misleading 0."""
    box = det_metrics.box
    index_of = {int(c): i for i, c in enumerate(det_metrics.ap_class_index)}
    nt_class = det_metrics.nt_per_class
    nt_image = det_metrics.nt_per_image
    per_class = []
    for class_id, name in enumerate(names):
        instances = int(nt_class[class_id]) if nt_class is not None and class_id < len(nt_class) else 0
        images = int(nt_image[class_id]) if nt_image is not None and class_id < len(nt_image) else 0
        row = {"class_id": class_id, "name": name, "images": images, "instances": instances}
        if class_id in index_of and instances:
            p, r, ap50, ap = box.class_result(index_of[class_id])
            row.update(precision=_num(p), recall=_num(r), mAP50=_num(ap50), **{"mAP50-95": _num(ap)})
        else:
            row.update(precision=None, recall=None, mAP50=None, **{"mAP50-95": None})
        per_class.append(row)
    return {
        "overall": {
            "precision": _num(box.mp),
            "recall": _num(box.mr),
            "mAP50": _num(box.map50),
            "mAP50-95": _num(box.map),
        },
        "per_class": per_class,
    }
