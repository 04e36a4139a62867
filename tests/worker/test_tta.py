"""The TTA side-by-side report, by hand."""

from __future__ import annotations

from worker.tta import kinds_side_by_side, side_by_side


def summary(overall: float, rows: list[tuple[str, float | None]]) -> dict:
    return {
        "overall": {"precision": overall, "recall": overall, "mAP50": overall, "mAP50-95": overall / 2},
        "per_class": [
            {"class_id": i, "name": name, "instances": 0 if v is None else 5, "precision": v, "recall": v,
             "mAP50": v, "mAP50-95": v}
            for i, (name, v) in enumerate(rows)
        ],
    }


def test_side_by_side_deltas_and_classes_without_ground_truth():
    report = side_by_side(summary(0.5, [("a", 0.4), ("b", None)]), summary(0.6, [("a", 0.7), ("b", None)]))
    assert report["overall"]["mAP50"] == {"plain": 0.5, "tta": 0.6, "delta": 0.1}
    assert report["overall"]["mAP50-95"]["delta"] == 0.05
    a, b = report["per_class"]
    assert a["name"] == "a" and a["mAP50"] == {"plain": 0.4, "tta": 0.7, "delta": 0.3} and a["instances"] == 5
    assert b["mAP50"] == {"plain": None, "tta": None, "delta": None}


def test_kind_counts_side_by_side_include_kinds_only_one_side_has():
    report = kinds_side_by_side({"missed": 4, "duplicate": 1}, {"missed": 2, "background": 3})
    assert report["kinds"] == {
        "missed": {"plain": 4, "tta": 2, "delta": -2},
        "duplicate": {"plain": 1, "tta": 0, "delta": -1},
        "background": {"plain": 0, "tta": 3, "delta": 3},
    }
