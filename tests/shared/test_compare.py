"""shared/compare.py on hand-built evaluations: every change is b - a, classes come biggest |mAP50| change first,
and evaluations that cannot be compared are refused (409) naming what differs."""

from __future__ import annotations

import pytest

from shared.compare import compare, compare_table, parse_reference
from shared.errors import Conflict

KINDS = ("classification", "localization", "both", "duplicate", "background", "missed")


def evaluation(job_id: str, per_class: dict[str, tuple], errors: dict[str, dict[str, int]] | None, **extra) -> dict:
    """``per_class``: name -> (instances, precision, recall, mAP50, mAP50-95); ``errors``: name -> kind -> count."""
    rows = [
        {
            "class_id": i,
            "name": name,
            "images": 1,
            "instances": inst,
            "precision": p,
            "recall": r,
            "mAP50": m50,
            "mAP50-95": m,
        }
        for i, (name, (inst, p, r, m50, m)) in enumerate(per_class.items())
    ]
    overall = {
        key: round(sum(row[key] for row in rows if row[key] is not None) / len(rows), 6)
        for key in ("precision", "recall", "mAP50", "mAP50-95")
    }
    breakdown = None
    if errors is not None:
        breakdown = {
            "mAP50": overall["mAP50"],
            "overall": {k: {"count": sum(errors[n].get(k, 0) for n in errors), "dAP50": 0.01} for k in KINDS},
            "per_class": [
                {
                    "class_id": i,
                    "name": name,
                    "errors": {k: {"count": errors[name].get(k, 0), "dAP50": 0.0} for k in KINDS},
                }
                for i, name in enumerate(per_class)
            ],
        }
    return {
        "job_id": job_id,
        "stage_index": 1,
        "stage_name": None,
        "dataset": "tiny",
        "split": "val",
        "weights": f"jobs/{job_id}/01-train/weights/best.pt",
        "metrics": {"overall": overall, "per_class": rows},
        "error_breakdown": breakdown,
        "note": None,
        **extra,
    }


A = evaluation(
    "a",
    {"square": (10, 0.5, 0.4, 0.30, 0.20), "disc": (6, 0.9, 0.8, 0.85, 0.60), "bar": (4, 0.2, 0.1, 0.10, 0.05)},
    {"square": {"missed": 5, "localization": 2}, "disc": {"missed": 1}, "bar": {"background": 3, "missed": 3}},
)
B = evaluation(
    "b",
    {"square": (10, 0.6, 0.5, 0.45, 0.25), "disc": (6, 0.7, 0.7, 0.60, 0.40), "bar": (4, 0.3, 0.2, 0.12, 0.06)},
    {"square": {"missed": 2, "localization": 4}, "disc": {"missed": 3}, "bar": {"background": 1, "missed": 3}},
)


def test_every_change_is_b_minus_a() -> None:
    result = compare(A, B)
    dumped = result.model_dump(by_alias=True)
    for metric in ("precision", "recall", "mAP50", "mAP50-95"):
        change = dumped["overall"][metric]
        assert (change["a"], change["b"]) == (A["metrics"]["overall"][metric], B["metrics"]["overall"][metric])
        assert change["delta"] == pytest.approx(change["b"] - change["a"], abs=1e-9)
    rows_a = {row["name"]: row for row in A["metrics"]["per_class"]}
    rows_b = {row["name"]: row for row in B["metrics"]["per_class"]}
    for row in dumped["per_class"]:
        for metric in ("precision", "recall", "mAP50", "mAP50-95"):
            a, b = rows_a[row["name"]][metric], rows_b[row["name"]][metric]
            assert (row[metric]["a"], row[metric]["b"]) == (a, b)
            assert row[metric]["delta"] == pytest.approx(b - a, abs=1e-9)
        assert row["instances"] == rows_b[row["name"]]["instances"]
    square = next(row for row in dumped["per_class"] if row["name"] == "square")
    assert square["errors"]["missed"] == {"a": 5, "b": 2, "delta": -3}
    assert square["errors"]["localization"] == {"a": 2, "b": 4, "delta": 2}
    assert square["errors"]["duplicate"] == {"a": 0, "b": 0, "delta": 0}
    assert dumped["error_kinds"]["missed"] == {"a": 9, "b": 8, "delta": -1}
    assert dumped["error_kinds"]["background"] == {"a": 3, "b": 1, "delta": -2}
    assert dumped["a"]["job_id"] == "a" and dumped["b"]["weights"] == "jobs/b/01-train/weights/best.pt"
    assert dumped["a"]["per_class_errors"] and dumped["notes"] == []


def test_classes_come_biggest_absolute_map50_change_first() -> None:
    rows = compare(A, B).per_class
    assert [row.name for row in rows] == ["disc", "square", "bar"]  # -0.25, +0.15, +0.02
    assert [row.class_id for row in rows] == [1, 0, 2]


def test_none_metrics_give_none_deltas_and_sort_last() -> None:
    a = evaluation("a", {"empty": (0, None, None, None, None), "x": (3, 0.5, 0.5, 0.5, 0.3)}, None)
    b = evaluation("b", {"empty": (0, None, None, None, None), "x": (3, 0.5, 0.5, 0.5, 0.3)}, None)
    result = compare(a, b)
    assert [row.name for row in result.per_class] == ["x", "empty"]
    empty = result.per_class[1]
    assert empty.mAP50.delta is None and empty.precision.a is None and empty.errors is None
    assert not result.a.per_class_errors and result.error_kinds == {}


def test_different_class_lists_are_refused_naming_both() -> None:
    other = evaluation("b", {"square": (10, 0.6, 0.5, 0.45, 0.25), "ring": (6, 0.7, 0.7, 0.6, 0.4)}, None)
    with pytest.raises(Conflict) as refused:
        compare(A, other)
    message = refused.value.message
    assert "class lists differ" in message and "class 1 is 'disc' in a, 'ring' in b" in message
    assert "[square, disc, bar] (3 classes)" in message and "[square, ring] (2 classes)" in message
    shorter = evaluation("b", {"square": (10, 0.6, 0.5, 0.45, 0.25), "disc": (6, 0.7, 0.7, 0.6, 0.4)}, None)
    with pytest.raises(Conflict, match="a has 3 classes, b 2"):
        compare(A, shorter)


@pytest.mark.parametrize(("key", "value"), [("dataset", "other"), ("split", "test")])
def test_different_dataset_or_split_is_refused_naming_each(key: str, value: str) -> None:
    with pytest.raises(Conflict) as refused:
        compare(A, {**B, key: value})
    message = refused.value.message
    assert f"different {key}s" in message and repr(A[key]) in message and repr(value) in message
    assert refused.value.status_code == 409 and refused.value.field == "b"


def test_one_side_without_per_class_errors_keeps_the_metrics_and_says_so() -> None:
    note = "job b stage 1: its report jobs/b/02-evaluate/metrics.json is gone; per-class error counts left out"
    partial = {**B, "error_breakdown": {**B["error_breakdown"], "per_class": None}, "note": note}
    partial["error_breakdown"].pop("per_class")
    result = compare(A, partial)
    assert all(row.errors is None for row in result.per_class)
    assert result.notes == [note] and result.a.per_class_errors and not result.b.per_class_errors
    assert result.error_kinds["missed"].delta == -1  # the overall counts are in the stage results
    assert result.per_class[0].mAP50.delta == pytest.approx(-0.25)


def test_changed_ground_truth_is_noted() -> None:
    rows = [dict(row) for row in B["metrics"]["per_class"]]
    rows[0]["instances"] = 12
    result = compare(A, {**B, "metrics": {**B["metrics"], "per_class": rows}})
    assert any("square 10 -> 12" in note for note in result.notes)


@pytest.mark.parametrize(
    ("reference", "expected"), [("abc123", ("abc123", None)), ("abc123:2", ("abc123", 2)), ("a_b-c:0", ("a_b-c", 0))]
)
def test_references(reference: str, expected: tuple) -> None:
    assert parse_reference(reference) == expected


@pytest.mark.parametrize("reference", ["job:abc", "job:", ":1", "job:1:2", "a/b", ""])
def test_malformed_references(reference: str) -> None:
    with pytest.raises(ValueError):
        parse_reference(reference)


def test_table_has_the_overall_row_first_then_the_biggest_changes() -> None:
    table = compare_table(compare(A, B).model_dump(mode="json", by_alias=True))
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("class"))
    assert "mAP50 a -> b (delta)" in lines[header]
    assert [line.split()[0] for line in lines[header + 1 : header + 5]] == ["all", "disc", "square", "bar"]
    disc = lines[header + 2].split()
    assert disc[:6] == ["disc", "6", "0.850", "->", "0.600", "(-0.250)"]
    assert "  missed                9 -> 8      (-1)" in table
