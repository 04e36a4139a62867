"""Which files make a split, and where an image's label is: the one listing every module uses (validation,
the dataset gate's fingerprint, the training profile, mining, the hard-example dataset, the export check)."""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_SUFFIXES = frozenset(
    {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"}
)
"""Ultralytics' image formats (ultralytics/data/utils.py IMG_FORMATS)."""


def label_path_for(image: Path) -> Path:
    """Ultralytics' rule: the last ``/images/`` in the path becomes ``/labels/``, the suffix ``.txt``."""
    text = str(image)
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if images in text:
        head, tail = text.rsplit(images, 1)
        text = head + labels + tail
    return Path(text).with_suffix(".txt")


def split_images(paths: list[Path]) -> list[Path]:
    """The image files of a split given as folders, list files and/or image files, sorted as Ultralytics reads
    them. Entries of a list file are taken relative to it and not resolved: a link stays a link, so callers can
    refuse one that leads outside the dataset."""
    images: list[Path] = []
    for path in paths:
        if path.is_dir():
            images.extend(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.suffix == ".txt":
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                entry = line.strip()
                if entry:
                    images.append(path.parent / entry if not Path(entry).is_absolute() else Path(entry))
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
    return sorted(set(images))
