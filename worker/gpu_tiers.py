"""``batch: auto``: model size, batch and imgsz picked from the free memory of the training device.

A pure function of the free VRAM in GB (None: no GPU), so it is tested with numbers. The tier's
imgsz is a ceiling: it never raises the imgsz a stage asked for."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GpuTier:
    name: str
    model_scale: str
    batch: int
    imgsz: int

    def as_dict(self) -> dict:
        return asdict(self)


CPU = GpuTier("cpu", "n", 4, 320)
LOW = GpuTier("low", "n", 8, 512)  # < 6 GB
MEDIUM = GpuTier("medium", "s", 16, 640)  # 6-12 GB
HIGH = GpuTier("high", "m", 16, 640)  # 12-24 GB
WORKSTATION = GpuTier("workstation", "l", 32, 640)  # > 24 GB


def pick_tier(free_vram_gb: float | None) -> GpuTier:
    if free_vram_gb is None:
        return CPU
    if free_vram_gb < 6:
        return LOW
    if free_vram_gb < 12:
        return MEDIUM
    if free_vram_gb <= 24:
        return HIGH
    return WORKSTATION


def scaled_model(source: str, scale: str) -> str | None:
    """An Ultralytics family config named without a scale (``yolov8.yaml``, ``yolo11.yaml``) with the
    tier's scale; None for anything else (a scaled config, weights): a model the user pinned is kept."""
    match = re.fullmatch(r"(yolo(?:v\d+|\d+))\.yaml", source)
    return f"{match.group(1)}{scale}.yaml" if match else None
