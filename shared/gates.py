"""Gates: does a succeeded stage's metrics let the job go on? Pure functions over stored results; the worker
applies the verdict through shared/states.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.stage_kinds.base import Gate


@dataclass(frozen=True)
class Verdict:
    passed: bool
    value: float | None
    reason: str

    def as_info(self, gate: Gate, previous: float | None) -> dict:
        return {"passed": self.passed, "metric": gate.metric, "class": gate.class_, "value": self.value,
                "min": gate.min, "previous": previous, "reason": self.reason}


def metric_value(metrics: dict | None, metric: str, class_key: str | None) -> float | None:
    """One figure from a ``detection_summary`` (worker/ultralytics_ext/metrics.py): overall, or one class by name or
    id. None when the stage measured nothing, or the class has no ground truth in the split."""
    if not metrics:
        return None
    if class_key is None:
        return metrics.get("overall", {}).get(metric)
    for row in metrics.get("per_class", []):
        if row.get("name") == class_key or str(row.get("class_id")) == class_key:
            return row.get(metric)
    return None


def previous_value(earlier_metrics: Sequence[dict | None], metric: str, class_key: str | None) -> float | None:
    """The same figure from the latest earlier stage that measured it."""
    for metrics in reversed(earlier_metrics):
        value = metric_value(metrics, metric, class_key)
        if value is not None:
            return value
    return None


def judge(gate: Gate, metrics: dict | None, previous: float | None) -> Verdict:
    """Whether ``metrics`` pass ``gate``; ``previous`` is the figure to beat for ``better_than_previous``."""
    what = gate.metric + (f" of class {gate.class_}" if gate.class_ is not None else "")
    value = metric_value(metrics, gate.metric, gate.class_)
    if value is None:
        return Verdict(False, None, f"gate: {what} was not measured (no metrics, or no such objects in the split)")
    failures = []
    if gate.min is not None and value < gate.min:
        failures.append(f"below the minimum {gate.min}")
    if gate.better_than_previous:
        if previous is None:
            failures.append("no earlier stage measured it to compare with")
        elif value <= previous:
            failures.append(f"not better than the previous {previous:.4f}")
    if failures:
        return Verdict(False, value, f"gate: {what} is {value:.4f}, " + " and ".join(failures))
    return Verdict(True, value, f"gate passed: {what} is {value:.4f}")


def stronger_weights(weights: Sequence[float], factor: float) -> list[float]:
    """Class weights made more aggressive for a gate retry: each raised to ``factor`` and brought back to mean 1,
    so the order is kept and the spread grows (a weight of 1 everywhere stays 1)."""
    raised = [max(float(w), 1e-6) ** factor for w in weights]
    mean = sum(raised) / len(raised)
    return [w / mean for w in raised]
