"""omr-bench (../shared/omr-bench, read in place, never copied): a data.yaml that points at it."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("YOLO_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
# ../shared/omr-bench beside the checkout (or beside the folder of worktrees); OMR_BENCH overrides
OMR_BENCH = next(
    (p / "shared" / "omr-bench" for p in (REPO.parent, REPO.parent.parent) if (p / "shared" / "omr-bench").is_dir()),
    REPO.parent / "shared" / "omr-bench",
)
THIN_CLASSES = ("stem", "barline", "barline_double", "barline_final", "barline_repeat")


def omr_data_yaml(val_images: int | None = None) -> Path:
    """Its data.yaml has no ``path`` key; write one with the absolute path into a temporary folder.
    ``val_images``: validate on the first N val images only (a list file; the images stay where they are)."""
    root = Path(os.environ.get("OMR_BENCH", OMR_BENCH)).resolve()
    if not (root / "data.yaml").is_file():
        raise SystemExit(f"omr-bench not found at {root} (set OMR_BENCH)")
    data = yaml.safe_load((root / "data.yaml").read_text())
    data["path"] = str(root)
    folder = Path(tempfile.mkdtemp(prefix="omr-bench-yaml-"))
    if val_images:
        chosen = sorted((root / "images" / "val").glob("*.png"))[:val_images]
        (folder / "val.txt").write_text("".join(f"{image}\n" for image in chosen))
        data["val"] = str(folder / "val.txt")
    target = folder / "data.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target
