"""Presets as the API shows them."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PresetStage(BaseModel):
    name: str | None
    type: str


class PresetSummary(BaseModel):
    name: str
    description: str
    stages: list[PresetStage]
    url: str


class PresetsPublic(BaseModel):
    items: list[PresetSummary]


class PresetPublic(BaseModel):
    name: str
    description: str
    model: str
    stages: list[dict] = Field(description="The preset's stages as its file gives them (defaults filled in at submit).")
    text: str = Field(description="The preset file, comments included: a starting point for a pipeline file.")
