"""Presets: plain pipeline files shipped with the package (``shared/presets/<name>.yaml``), and their expansion.

A job names one with ``preset: hem`` plus the usual ``dataset`` and optional ``overrides``; the expansion (the
preset's stages with the overrides applied) is what is validated, stored and shown, so a stored job never
depends on the preset file staying as it was."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import yaml

PRESETS_DIR = Path(__file__).resolve().parent
STAGE_WIDE_FIELDS = ("imgsz", "batch", "seed")
"""Overrides that apply to every stage that has the field."""


class PresetError(ValueError):
    """A preset that does not exist or overrides that do not fit it; the message names the field."""


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


@cache
def _preset_text(name: str) -> str:
    return (PRESETS_DIR / f"{name}.yaml").read_text(encoding="utf-8")


def preset_text(name: str) -> str:
    """The preset file as shipped (comments included): what ``stagerun preset show`` prints."""
    if name not in preset_names():
        raise PresetError(f"preset: no preset {name!r} (there are: {', '.join(preset_names())})")
    return _preset_text(name)


def load_preset(name: str) -> dict:
    """The preset as a mapping: description, model, stages."""
    return yaml.safe_load(preset_text(name))


def _stage_position(stages: list[dict], key: str) -> int:
    if key.isdigit() and int(key) < len(stages):
        return int(key)
    for position, stage in enumerate(stages):
        if stage.get("name") == key:
            return position
    known = ", ".join(f"{i} ({s.get('name') or s['type']})" for i, s in enumerate(stages))
    raise PresetError(f"overrides.stages.{key}: the preset has no stage of that name or index (it has {known})")


def split_epochs(total: int, shares: list[int]) -> list[int]:
    """``total`` epochs over train stages in the proportions of ``shares``, each at least 1, summing to total
    (largest remainders get the leftover epochs)."""
    if total < len(shares):
        raise PresetError(f"overrides.epochs: {total} epochs cannot be shared by {len(shares)} train stages")
    weight = sum(shares)
    exact = [total * share / weight for share in shares]
    counts = [max(1, int(value)) for value in exact]
    order = sorted(range(len(shares)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
    step = 0
    while sum(counts) != total:
        i = order[step % len(order)]
        if sum(counts) < total:
            counts[i] += 1
        elif counts[i] > 1:
            counts[i] -= 1
        step += 1
    return counts


def expand(body: dict) -> dict:
    """A job body naming ``preset`` as the pipeline it stands for: the preset's model and stages with
    ``overrides`` applied (``epochs``: total train epochs split over the train stages in the preset's
    proportions; ``imgsz``, ``batch``, ``seed``: every stage that has the field; ``stages``: fields per stage,
    keyed by stage name or index). Fields the body gives itself (``model``, ``name``, ...) win over the preset's.
    A body without ``preset`` is returned as it is."""
    name = body.get("preset")
    if name is None:
        return body
    if not isinstance(name, str):
        raise PresetError("preset: must be the name of a preset")
    if body.get("stages") is not None:
        raise PresetError("stages: give either stages or a preset (change a preset's stages with overrides.stages)")
    preset = copy.deepcopy(load_preset(name))
    overrides = body.get("overrides") or {}
    stages = apply_overrides(preset["stages"], overrides)
    expanded = {k: v for k, v in body.items() if k not in ("preset", "overrides")}
    expanded.setdefault("model", preset.get("model"))
    expanded["stages"] = stages
    expanded["from_preset"] = {"name": name, "overrides": overrides}
    return expanded


def apply_overrides(stages: list[dict], overrides: object, first: int = 0) -> list[dict]:
    """``stages`` (plain stage mappings, changed in place and returned) with ``overrides`` applied: ``epochs``
    split over the train stages, ``imgsz``/``batch``/``seed`` on every stage with the field, ``stages`` per stage
    by name or index. Only stages from ``first`` on may change (a re-run keeps the ones before)."""
    if not isinstance(overrides, dict):
        raise PresetError("overrides: must be a mapping (epochs, imgsz, batch, seed, stages)")
    unknown = set(overrides) - {"epochs", *STAGE_WIDE_FIELDS, "stages"}
    if unknown:
        raise PresetError(f"overrides.{sorted(unknown)[0]}: not an override (epochs, imgsz, batch, seed, stages)")
    editable = stages[first:]
    if overrides.get("epochs") is not None:
        total = overrides["epochs"]
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            raise PresetError("overrides.epochs: must be a whole number of epochs, at least 1")
        trains = [s for s in editable if s["type"] == "train"]
        if not trains:
            raise PresetError("overrides.epochs: there is no train stage to give epochs to")
        for stage, epochs in zip(trains, split_epochs(total, [s.get("epochs", 10) for s in trains]), strict=True):
            stage["epochs"] = epochs
    for field in STAGE_WIDE_FIELDS:
        if overrides.get(field) is not None:
            for stage in editable:
                if field in _stage_fields(stage["type"]):
                    stage[field] = overrides[field]
    per_stage = overrides.get("stages") or {}
    if not isinstance(per_stage, dict):
        raise PresetError("overrides.stages: must map a stage name or index to the fields to change")
    for key, fields in per_stage.items():
        if not isinstance(fields, dict):
            raise PresetError(f"overrides.stages.{key}: must be a mapping of fields")
        if "type" in fields:
            raise PresetError(f"overrides.stages.{key}.type: a stage's type cannot be changed")
        position = _stage_position(stages, str(key))
        if position < first:
            raise PresetError(
                f"overrides.stages.{key}: stage {position} is reused as it ran; re-run from it to change it"
            )
        stages[position].update(fields)
    return stages


def _stage_fields(stage_type: str) -> set[str]:
    from shared.stage_kinds import KINDS

    if stage_type not in KINDS:
        raise PresetError(f"stages: unknown stage type {stage_type!r}")
    return set(KINDS[stage_type].spec.model_fields)
