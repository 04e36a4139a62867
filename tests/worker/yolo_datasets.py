"""Tiny hand-made datasets and the two ways to build a training dataset from them: Ultralytics' own
(``build_yolo_dataset``) and stagerun's ``StagerunDataset``, with the same arguments."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from ultralytics.cfg import get_cfg
from ultralytics.data.build import build_yolo_dataset

from worker.ultralytics_ext.dataset import DataOptions, StagerunDataset, training_dataset

TINY_TRAIN = {
    "epochs": 1,
    "imgsz": 64,
    "batch": 4,
    "workers": 0,
    "seed": 0,
    "deterministic": True,
    "device": "cpu",
    "plots": False,
    "amp": False,
    "verbose": False,
}
"""Ultralytics train arguments for a tiny, repeatable CPU run."""


def write_dataset(root: Path, images: list[tuple[np.ndarray, list[tuple]]], names: list[str]) -> Path:
    """``images``: (H x W x 3 uint8 pixels, [(class, x1, y1, x2, y2) in pixels]); returns the images folder."""
    (root / "images" / "train").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
    for i, (pixels, boxes) in enumerate(images):
        height, width = pixels.shape[:2]
        Image.fromarray(pixels).save(root / "images" / "train" / f"{i:04d}.png")
        lines = [
            f"{c} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
            for c, x1, y1, x2, y2 in boxes
        ]
        (root / "labels" / "train" / f"{i:04d}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "names": dict(enumerate(names))}))
    return root / "images" / "train"


def training_args(**overrides):
    return get_cfg(overrides={"imgsz": 64, "plots": False, **overrides})


def plain_dataset(images: Path, names: list[str], **overrides):
    data = {"names": dict(enumerate(names)), "nc": len(names), "channels": 3}
    return build_yolo_dataset(training_args(**overrides), str(images), 4, data, mode="train", stride=32)


def stagerun_dataset(images: Path, names: list[str], options: DataOptions, **overrides) -> StagerunDataset:
    data = {"names": dict(enumerate(names)), "nc": len(names), "channels": 3}
    return training_dataset(training_args(**overrides), str(images), 4, data, 32, options)


def sample(dataset, index: int, seed: int) -> dict:
    """One augmented sample with Python's and NumPy's random state fixed, so two pipelines draw alike."""
    random.seed(seed)
    np.random.seed(seed)
    return dataset[index]
