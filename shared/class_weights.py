"""Per-class weights: explicit maps resolved against the dataset's names, or automatic strategies computed
from instance counts. Pure functions; the worker counts the training labels and calls ``class_weights``."""

from __future__ import annotations

from collections.abc import Sequence

from shared.errors import InvalidSpec
from shared.stage_kinds.training_options import AutoClassWeights


def class_index(key: str, names: Sequence[str], field: str) -> int:
    """A class id ('3') or name ('barline') as an index into ``names``; unknown ones are a 422 naming the field."""
    if key in names:
        return list(names).index(key)
    if key.strip().isdigit():
        index = int(key)
        if index < len(names):
            return index
        raise InvalidSpec(f"class id {index} is out of range: the dataset has {len(names)} classes", field=field)
    known = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    raise InvalidSpec(f"unknown class {key!r}; the dataset's classes are: {known}", field=field)


def class_indices(keys: Sequence[int | str], names: Sequence[str], field: str) -> list[int]:
    """Several classes by id or name (``field.<position>`` names a bad one); naming a class twice is an error."""
    indices: list[int] = []
    for position, key in enumerate(keys):
        index = class_index(str(key), names, f"{field}.{position}")
        if index in indices:
            raise InvalidSpec(f"class {names[index]!r} is named twice", field=f"{field}.{position}")
        indices.append(index)
    return indices


def explicit_weights(weights: dict[str, float], names: Sequence[str], field: str = "class_weights") -> list[float]:
    """Listed classes get their weight, the others 1. Naming one class twice (by id and name) is an error."""
    resolved = [1.0] * len(names)
    seen: dict[int, str] = {}
    for key, weight in weights.items():
        index = class_index(key, names, f"{field}.{key}")
        if index in seen:
            raise InvalidSpec(f"class {names[index]!r} is given twice ({seen[index]!r} and {key!r})", field=field)
        seen[index] = key
        resolved[index] = float(weight)
    return resolved


def automatic_weights(
    strategy: str, counts: Sequence[int], beta: float = 0.999, min_weight: float | None = None
) -> list[float]:
    """Weights from instance counts, normalized to mean 1, then raised to ``min_weight`` where below it. A class
    with no instances counts as one instance, so it gets the largest weight rather than an infinite one."""
    if not counts:
        return []
    clamped = [max(int(count), 1) for count in counts]
    if strategy == "inverse":
        raw = [1.0 / count for count in clamped]
    elif strategy == "sqrt_inverse":
        raw = [count**-0.5 for count in clamped]
    elif strategy == "effective_number":
        raw = [(1.0 - beta) / (1.0 - beta**count) for count in clamped]
    else:
        raise InvalidSpec(f"unknown class weight strategy {strategy!r}", field="strategy")
    mean = sum(raw) / len(raw)
    normalized = [value / mean for value in raw]
    return normalized if min_weight is None else [max(value, min_weight) for value in normalized]


def class_weights(
    spec: dict[str, float] | str | AutoClassWeights,
    names: Sequence[str],
    counts: Sequence[int],
    field: str = "class_weights",
) -> list[float]:
    """One weight per class for a ``ClassWeights`` spec, given the training set's instances per class."""
    if isinstance(spec, dict):
        return explicit_weights(spec, names, field)
    if isinstance(spec, str):
        return automatic_weights(spec, counts)
    return automatic_weights(spec.strategy, counts, spec.beta, spec.min_weight)
