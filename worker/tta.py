"""Test-time augmentation reported beside the plain result: the same weights, split and thresholds, once without
and once with Ultralytics' ``augment=True`` (for detection: the image at scales 1, 0.83 and 0.67, the middle one
flipped left-right, predictions merged before NMS). Pure functions over the two results."""

from __future__ import annotations

METHOD = "ultralytics augment=True: scales 1, 0.83, 0.67 with a left-right flip at 0.83, merged before NMS"
METRICS = ("precision", "recall", "mAP50", "mAP50-95")


def _change(plain: float | None, tta: float | None) -> dict:
    delta = None if plain is None or tta is None else round(tta - plain, 6)
    return {"plain": plain, "tta": tta, "delta": delta}


def side_by_side(plain: dict, tta: dict) -> dict:
    """Two ``detection_summary`` results (plain, augmented) as per-metric {plain, tta, delta}, overall and per class."""
    by_class = {row["class_id"]: row for row in plain["per_class"]}
    return {
        "method": METHOD,
        "overall": {metric: _change(plain["overall"][metric], tta["overall"][metric]) for metric in METRICS},
        "per_class": [
            {
                "class_id": row["class_id"],
                "name": row["name"],
                "instances": row["instances"],
                **{metric: _change(by_class[row["class_id"]][metric], row[metric]) for metric in METRICS},
            }
            for row in tta["per_class"]
        ],
    }


def kinds_side_by_side(plain: dict[str, int], tta: dict[str, int]) -> dict:
    """A mine stage's error-kind counts without and with TTA."""
    return {
        "method": METHOD,
        "kinds": {
            kind: {"plain": plain.get(kind, 0), "tta": tta.get(kind, 0), "delta": tta.get(kind, 0) - plain.get(kind, 0)}
            for kind in dict.fromkeys([*plain, *tta])
        },
    }
