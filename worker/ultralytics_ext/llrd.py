"""Layer-wise learning-rate decay: the head learns at lr0, each layer before it ``rate`` times slower.
Pure functions over parameter names and optimizer parameter-group dicts."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_LAYER = re.compile(r"^model\.(\d+)\.")


def layer_index(param_name: str) -> int | None:
    """The layer a parameter of an Ultralytics model belongs to ('model.12.cv1.conv.weight' -> 12)."""
    match = _LAYER.match(param_name)
    return int(match.group(1)) if match else None


def layer_lr_factors(layers: int, rate: float) -> list[float]:
    """``rate^(layers-1-i)`` for layer i: 1 for the last layer (the head), ``rate^(layers-1)`` for the first."""
    return [rate ** (layers - 1 - i) for i in range(layers)]


def split_by_layer(groups: Iterable[Mapping], layer_of: Mapping[int, int], factors: list[float]) -> list[dict]:
    """Each parameter group split into one group per layer, with its ``lr`` multiplied by that layer's factor.

    ``layer_of`` maps ``id(param)`` to a layer index; parameters it does not know keep the group's lr. Every
    other setting of a group (weight decay, momentum, its Ultralytics ``param_group`` name) is kept."""
    split: list[dict] = []
    for group in groups:
        settings = {key: value for key, value in group.items() if key != "params"}
        buckets: dict[int | None, list] = {}
        for param in group["params"]:
            buckets.setdefault(layer_of.get(id(param)), []).append(param)
        for layer, params in sorted(buckets.items(), key=lambda item: -1 if item[0] is None else item[0]):
            factor = 1.0 if layer is None else factors[layer]
            split.append({**settings, "params": params, "lr": settings["lr"] * factor, "layer": layer})
    return split
