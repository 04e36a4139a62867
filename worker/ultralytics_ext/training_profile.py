"""The dataset profile of a trainer's training split, read from the label files and image headers before
Ultralytics builds its dataset, so that the automatic recipe (shared/recipe.py) can choose the data options
too: the dataset class and the sampler are built before any label reaches the trainer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from shared.datasets.files import label_path_for, split_images
from shared.datasets.profile import build_profile
from shared.datasets.validate import LabeledImage, parse_label_text


def training_images(train: str | list[str], nc: int) -> Iterator[LabeledImage]:
    """Every training image with its readable boxes (unreadable images and label lines are left out here:
    the dataset validator reports them)."""
    paths = [Path(p) for p in (train if isinstance(train, list | tuple) else [train])]
    for image in split_images(paths):
        try:
            with Image.open(image) as opened:
                width, height = opened.size
        except Exception:  # noqa: BLE001 - Ultralytics' patched Image.open raises ImportError for unknown files
            continue
        label = label_path_for(image)
        boxes = []
        if label.is_file():
            boxes, _ = parse_label_text(label.read_text(encoding="utf-8", errors="replace"), nc)
        yield LabeledImage(split="train", path=str(image), width=width, height=height, boxes=boxes)


def training_profile(data: dict) -> dict:
    """``data``: Ultralytics' checked dataset dict (absolute ``train`` paths, ``names``, ``nc``)."""
    names = [str(data["names"][i]) for i in range(int(data["nc"]))]
    return build_profile(names, training_images(data["train"], len(names)))
