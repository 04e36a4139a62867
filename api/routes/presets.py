"""Presets: the pipelines shipped with stagerun (shared/presets/*.yaml), to read or to name in a job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from api.deps import current_principal
from api.responses import V1_ERRORS
from shared.errors import NotFound
from shared.presets import PresetError, load_preset, preset_names, preset_text
from shared.schemas.presets import PresetPublic, PresetsPublic, PresetStage, PresetSummary
from shared.urls import preset_url

router = APIRouter(prefix="/presets", tags=["presets"], dependencies=[Depends(current_principal)],
                   responses=V1_ERRORS)
PresetName = Annotated[str, Path(max_length=64, description="A preset's name, e.g. hem.")]


@router.get("", response_model=PresetsPublic)
def list_presets() -> PresetsPublic:
    """Every preset: its name, what it does and its stages. A job names one with ``preset: <name>``."""
    items = []
    for name in preset_names():
        preset = load_preset(name)
        items.append(PresetSummary(
            name=name,
            description=preset.get("description", ""),
            stages=[PresetStage(name=s.get("name"), type=s["type"]) for s in preset["stages"]],
            url=preset_url(name),
        ))
    return PresetsPublic(items=items)


@router.get("/{name}", response_model=PresetPublic)
def get_preset(name: PresetName) -> PresetPublic:
    """One preset: its stages, and its file as shipped (``stagerun preset show NAME > my.yaml``)."""
    try:
        text = preset_text(name)
    except PresetError as exc:
        raise NotFound(str(exc).removeprefix("preset: "), field="name") from None
    preset = load_preset(name)
    return PresetPublic(name=name, description=preset.get("description", ""), model=preset.get("model", ""),
                        stages=preset["stages"], text=text)
