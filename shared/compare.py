"""Two evaluations side by side, per class: what ``GET /v1/compare`` and ``stagerun compare`` show.

An *evaluation* is a plain dict, what one succeeded evaluate stage measured::

    {"job_id", "stage_index", "stage_name", "dataset", "split", "weights",
     "metrics": {"overall": {metric: value}, "per_class": [{"class_id", "name", "instances", metric: value}]},
     "error_breakdown": {"overall": {kind: {"count", "dAP50"}}, "per_class": [{"class_id", "errors": {kind: ...}}]},
     "note": why something is missing, or None}

``compare`` (pure) turns two of them into the response; ``evaluation_of`` reads one from a job's stage (and, for
the per-class error counts the stage results leave out, from the stage's metrics.json report)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.errors import Conflict, NotFound, StagerunError
from shared.models import Job, Stage
from shared.schemas.compare import Change, ClassComparison, ComparePublic, CountChange, EvaluationRef
from shared.stage_kinds import Product, produces
from shared.states import StageState
from shared.storage import safe_resolve

METRICS = ("precision", "recall", "mAP50", "mAP50-95")
REFERENCE = r"^[A-Za-z0-9_-]{1,64}(:[0-9]{1,4})?$"
_REFERENCE = re.compile(REFERENCE)


# ----------------------------------------------------------------------------------------------- the comparison


def _delta(a, b, digits: int = 6):
    if a is None or b is None:
        return None
    return b - a if isinstance(a, int) and isinstance(b, int) else round(b - a, digits)


def _change(a, b) -> Change:
    return Change(a=a, b=b, delta=_delta(a, b))


def _count_change(a, b) -> CountChange:
    return CountChange(a=a, b=b, delta=_delta(a, b))


def _shown(names: list[str], limit: int = 20) -> str:
    listed = ", ".join(names[:limit])
    return f"[{listed}{', ...' if len(names) > limit else ''}] ({len(names)} classes)"


def _label(side: str, evaluation: dict) -> str:
    return f"{side} (job {evaluation['job_id']} stage {evaluation['stage_index']})"


def _counts(kinds: dict | None) -> dict[str, int]:
    return {kind: entry["count"] for kind, entry in (kinds or {}).items() if entry.get("count") is not None}


def _per_class_errors(evaluation: dict) -> dict[int, dict[str, int]] | None:
    rows = (evaluation.get("error_breakdown") or {}).get("per_class")
    if rows is None:
        return None
    return {row.get("class_id", i): _counts(row.get("errors")) for i, row in enumerate(rows)}


def _kind_changes(a: dict[str, int], b: dict[str, int]) -> dict[str, CountChange]:
    return {kind: _count_change(a.get(kind), b.get(kind)) for kind in dict.fromkeys([*a, *b])}


def check_comparable(a: dict, b: dict) -> None:
    """409 unless both evaluations are on the same dataset and split, with the same classes in the same order."""
    for key in ("dataset", "split"):
        if a[key] != b[key]:
            raise Conflict(
                f"the evaluations are on different {key}s: {_label('a', a)} is on {key} {a[key]!r}, "
                f"{_label('b', b)} on {b[key]!r}",
                field="b",
            )
    names_a = [row["name"] for row in a["metrics"]["per_class"]]
    names_b = [row["name"] for row in b["metrics"]["per_class"]]
    if names_a != names_b:
        first = next((i for i, (x, y) in enumerate(zip(names_a, names_b, strict=False)) if x != y), None)
        where = (
            f"class {first} is {names_a[first]!r} in a, {names_b[first]!r} in b"
            if first is not None
            else f"a has {len(names_a)} classes, b {len(names_b)}"
        )
        raise Conflict(
            f"the class lists differ ({where}): {_label('a', a)} has {_shown(names_a)}, "
            f"{_label('b', b)} has {_shown(names_b)}",
            field="b",
        )


def compare(a: dict, b: dict) -> ComparePublic:
    """Per-class and overall figures of two evaluations and their change b - a, the biggest |mAP50| change first.

    Raises Conflict when they are on different datasets or splits, or their class lists differ."""
    check_comparable(a, b)
    notes = [note for note in (a.get("note"), b.get("note")) if note]
    errors_a, errors_b = _per_class_errors(a), _per_class_errors(b)
    rows = []
    instances_differ = []
    for row_a, row_b in zip(a["metrics"]["per_class"], b["metrics"]["per_class"], strict=True):
        class_id = row_b.get("class_id", len(rows))
        if row_a.get("instances") != row_b.get("instances"):
            instances_differ.append(f"{row_b['name']} {row_a.get('instances')} -> {row_b.get('instances')}")
        changes = {metric: _change(row_a.get(metric), row_b.get(metric)) for metric in METRICS}
        errors = None
        if errors_a is not None and errors_b is not None:
            errors = _kind_changes(errors_a.get(row_a.get("class_id", class_id), {}), errors_b.get(class_id, {}))
        rows.append(
            ClassComparison(
                class_id=class_id,
                name=row_b["name"],
                instances=row_b.get("instances") or 0,
                precision=changes["precision"],
                recall=changes["recall"],
                mAP50=changes["mAP50"],
                mAP50_95=changes["mAP50-95"],
                errors=errors,
            )
        )
    if instances_differ:
        notes.append(
            "the ground truth differs between the two evaluations (the dataset changed?): instances "
            + ", ".join(instances_differ[:10])
            + (", ..." if len(instances_differ) > 10 else "")
        )
    rows.sort(key=lambda r: (r.mAP50.delta is None, -abs(r.mAP50.delta or 0.0), r.class_id))
    overall_a, overall_b = a["metrics"].get("overall") or {}, b["metrics"].get("overall") or {}
    return ComparePublic(
        a=_ref(a, errors_a is not None),
        b=_ref(b, errors_b is not None),
        overall={metric: _change(overall_a.get(metric), overall_b.get(metric)) for metric in METRICS},
        error_kinds=_kind_changes(
            _counts((a.get("error_breakdown") or {}).get("overall")),
            _counts((b.get("error_breakdown") or {}).get("overall")),
        ),
        per_class=rows,
        notes=notes,
    )


def _ref(evaluation: dict, per_class_errors: bool) -> EvaluationRef:
    return EvaluationRef(
        job_id=evaluation["job_id"],
        stage_index=evaluation["stage_index"],
        stage_name=evaluation.get("stage_name"),
        dataset=evaluation["dataset"],
        split=evaluation["split"],
        weights=evaluation.get("weights"),
        per_class_errors=per_class_errors,
    )


# ----------------------------------------------------------------------------------------------- reading a stage


def parse_reference(reference: str) -> tuple[str, int | None]:
    """``<job>`` or ``<job>:<stage index>`` -> (job id, index or None). The API checks the form first."""
    if not _REFERENCE.match(reference):
        raise ValueError(f"{reference!r} is not <job id> or <job id>:<stage index>")
    job_id, _, index = reference.partition(":")
    return job_id, int(index) if index else None


def pick_stage(job: Job, index: int | None, field: str) -> Stage:
    """The evaluate stage ``index`` of ``job``, or its last succeeded one; NotFound or Conflict naming ``field``."""
    succeeded = StageState.SUCCEEDED.value
    if index is None:
        evaluations = [s for s in job.stages if produces(s.type, Product.EVALUATION)]
        done = [s for s in evaluations if s.state == succeeded and s.results]
        if not done:
            states = ", ".join(f"stage {s.index} {s.state}" for s in evaluations) or "it has none"
            raise Conflict(f"job {job.id} has no succeeded evaluate stage ({states})", field=field)
        return max(done, key=lambda s: s.index)
    stage = next((s for s in job.stages if s.index == index), None)
    if stage is None:
        raise NotFound(f"job {job.id} has no stage {index} (it has {len(job.stages)})", field=field)
    if not produces(stage.type, Product.EVALUATION):
        raise Conflict(f"stage {index} of job {job.id} is a {stage.type} stage, not an evaluate stage", field=field)
    if stage.state != succeeded or not stage.results:
        raise Conflict(f"evaluate stage {index} of job {job.id} has not succeeded (state {stage.state})", field=field)
    return stage


def _full_breakdown(results: dict, artifacts_root: Path, where: str) -> tuple[dict | None, str | None]:
    """The stage's error breakdown with per-class rows: from the results if they hold them, else from the
    metrics.json report. When the report is gone: what the results hold, and a note saying so."""
    breakdown = results.get("error_breakdown")
    if breakdown is not None and breakdown.get("per_class") is not None:
        return breakdown, None
    report = results.get("report")
    if not report:
        return breakdown, f"{where} recorded no report file: per-class error counts left out"
    try:
        path = safe_resolve(artifacts_root, report, what="report")
        full = json.loads(path.read_text())["error_breakdown"]
        per_class = full["per_class"]
        if not isinstance(per_class, list):
            raise TypeError("per_class is not a list")
    except NotFound:
        return breakdown, f"{where}: its report {report} is gone; per-class error counts left out"
    except (StagerunError, OSError, ValueError, KeyError, TypeError) as exc:
        return breakdown, f"{where}: its report {report} cannot be read ({type(exc).__name__}); " + (
            "per-class error counts left out"
        )
    return {**full, **(breakdown or {}), "per_class": per_class}, None


def evaluation_of(job: Job, index: int | None, artifacts_root: Path, field: str) -> dict:
    """The evaluation (see the module docstring) of ``job``'s evaluate stage ``index`` (None: its last succeeded one)."""
    stage = pick_stage(job, index, field)
    results = stage.results or {}
    where = f"job {job.id} stage {stage.index}"
    if not isinstance(results.get("metrics"), dict) or "per_class" not in results["metrics"]:
        raise Conflict(f"{where} recorded no per-class metrics to compare", field=field)
    breakdown, note = _full_breakdown(results, artifacts_root, where)
    return {
        "job_id": job.id,
        "stage_index": stage.index,
        "stage_name": (stage.spec or {}).get("name"),
        "dataset": job.dataset,
        "split": results.get("split") or (stage.spec or {}).get("split", "val"),
        "weights": results.get("evaluated_weights"),
        "metrics": results["metrics"],
        "error_breakdown": breakdown,
        "note": note,
    }


# ----------------------------------------------------------------------------------------------- plain text


def _cell(change: dict) -> str:
    def fmt(value) -> str:
        return "-" if value is None else f"{value:.3f}"

    delta = change.get("delta")
    return f"{fmt(change.get('a'))} -> {fmt(change.get('b'))} ({'-' if delta is None else f'{delta:+.3f}'})"


def compare_table(report: dict) -> str:
    """The response of ``GET /v1/compare`` as plain text: what was compared, the overall row, then each class,
    the biggest mAP50 change first, then the error counts per kind."""
    lines = []
    for side in ("a", "b"):
        ref = report[side]
        name = f" ({ref['stage_name']})" if ref.get("stage_name") else ""
        lines.append(
            f"{side}: job {ref['job_id']} stage {ref['stage_index']}{name}, weights {ref.get('weights') or '?'}"
        )
    lines.append(f"on {report['a']['dataset']} split {report['a']['split']}")
    lines.append("")
    width = 28
    lines.append(
        f"{'class':<16}{'inst':>7}  {'mAP50 a -> b (delta)':<{width}}{'mAP50-95':<{width}}"
        f"{'precision':<{width}}{'recall':<{width}}".rstrip()
    )

    def row(name: str, instances: str, figures: dict) -> str:
        cells = "".join(f"{_cell(figures[m]):<{width}}" for m in ("mAP50", "mAP50-95", "precision", "recall"))
        return f"{name[:15]:<16}{instances:>7}  {cells}".rstrip()

    lines.append(row("all", "", report["overall"]))
    for entry in report["per_class"]:
        lines.append(row(entry["name"], str(entry["instances"]), entry))
    if report.get("error_kinds"):
        lines.append("")
        lines.append("errors (count a -> b):")
        for kind, change in report["error_kinds"].items():
            delta = change.get("delta")
            count_a, count_b = (change.get(side) for side in ("a", "b"))
            lines.append(
                f"  {kind:<16}{'-' if count_a is None else count_a:>7} -> {'-' if count_b is None else count_b:<7}"
                f"({'-' if delta is None else f'{delta:+d}'})"
            )
    for note in report.get("notes") or []:
        lines.append(f"note: {note}")
    return "\n".join(lines)
