"""A tiny synthetic detection dataset in Ultralytics layout, for the demo, tests and benchmarks.

Shapes on a noisy background: squares, discs and thin vertical bars (the kind of 2-4 px object the
real users fight with). Deterministic for a given seed; needs only NumPy and Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

CLASS_NAMES = ("square", "disc", "bar")


def _draw_image(
    rng: np.random.Generator, size: int, max_objects: int, bar_px: tuple[int, int]
) -> tuple[Image.Image, list[tuple]]:
    background = rng.integers(90, 166, size=(size, size, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    labels = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        class_id = int(rng.integers(0, len(CLASS_NAMES)))
        if class_id == 2:
            w, h = int(rng.integers(bar_px[0], bar_px[1] + 1)), int(rng.integers(size // 4, size // 2))
        else:
            w = h = int(rng.integers(max(8, size // 8), max(12, size // 3)))
        x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        colour = tuple(int(c) for c in rng.choice([0, 255], size=3))
        colour = colour if colour != (0, 0, 0) or class_id != 1 else (255, 255, 0)
        box = (x0, y0, x0 + w - 1, y0 + h - 1)
        if class_id == 1:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
        labels.append((class_id, (x0 + w / 2) / size, (y0 + h / 2) / size, w / size, h / size))
    return image, labels


def make_dataset(
    root: Path,
    train: int = 8,
    val: int = 4,
    test: int = 0,
    size: int = 96,
    seed: int = 0,
    max_objects: int = 4,
    bar_px: tuple[int, int] = (2, 4),
) -> Path:
    """Write images/, labels/ and data.yaml under ``root``; returns the data.yaml path.
    ``bar_px``: the narrowest and widest bar, in pixels ((1, 1) for 1 px bars, as thin as a stem)."""
    rng = np.random.default_rng(seed)
    splits = {"train": train, "val": val, "test": test}
    for split, count in splits.items():
        if count <= 0:
            continue
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, labels = _draw_image(rng, size, max_objects, bar_px)
            stem = f"{split}_{i:04d}"
            image.save(root / "images" / split / f"{stem}.png")
            lines = [f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, x, y, w, h in labels]
            (root / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    data = {split: f"images/{split}" for split, count in splits.items() if count > 0}
    data["names"] = dict(enumerate(CLASS_NAMES))
    data_yaml = root / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return data_yaml
