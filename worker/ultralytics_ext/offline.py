"""Make Ultralytics work with no network: never download weights, fonts or datasets, and keep its
settings file in a writable folder of ours. Must run before ``ultralytics`` is imported."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def ultralytics_env(config_dir: Path) -> dict[str, str]:
    """Environment variables a stage process needs (set by the parent that starts it)."""
    return {
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(config_dir),
        "YOLO_VERBOSE": "True",
        "MPLBACKEND": "Agg",
    }


def _bundled_font() -> Path | None:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    font = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return font if font.is_file() else None


def prepare_offline(config_dir: Path) -> None:
    """Set the environment and seed the fonts Ultralytics would otherwise try to download for its plots."""
    os.environ.update(ultralytics_env(config_dir))
    user_dir = config_dir / "Ultralytics"  # Ultralytics appends this to YOLO_CONFIG_DIR
    user_dir.mkdir(parents=True, exist_ok=True)
    font = _bundled_font()
    for name in FONT_NAMES:
        target = user_dir / name
        if font is not None and not target.exists():
            shutil.copyfile(font, target)
