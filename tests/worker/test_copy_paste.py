"""Rare-class copy-paste: overlap and placement by hand, then on a real augmentation pipeline: pasted boxes
lie inside the image, hold exactly the pixels of a rare object, and the rare-class count rises as expected."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from shared.stage_kinds.training_options import CopyPasteRare, ThinBoxes
from tests.worker.yolo_datasets import sample, stagerun_dataset, write_dataset
from worker.ultralytics_ext.augment import RareCopyPaste, covered_share, free_spot, objects_of
from worker.ultralytics_ext.dataset import TALLY_KEY, DataOptions

NAMES = ["common", "rare"]
NO_COLOUR_OR_FLIP = {"mosaic": 0.0, "fliplr": 0.0, "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0}


def test_covered_share_by_hand() -> None:
    boxes = np.array([[5, 5, 15, 15], [20, 20, 30, 30], [0, 0, 10, 10], [2, 0, 4, 40]], dtype=float)
    paste = np.array([0, 0, 10, 10], dtype=float)
    assert covered_share(paste, boxes).tolist() == pytest.approx([0.25, 0.0, 1.0, 0.25])  # last: 2x10 of 2x40
    assert covered_share(paste, np.zeros((0, 4))).tolist() == []


def test_free_spot_respects_bounds_and_overlap() -> None:
    rng = random.Random(0)
    occupied = np.array([[0, 0, 32, 64]], dtype=float)  # the left half is taken
    for _ in range(50):
        x, y = free_spot((8, 8), (64, 64), occupied, max_overlap=0.0, rng=rng)
        assert 32 <= x <= 56 and 0 <= y <= 56
    whole = np.array([[0, 0, 64, 64]], dtype=float)  # any 8 x 8 paste covers 64 / 4096 = 1.6% of it
    assert free_spot((8, 8), (64, 64), whole, 0.01, rng) is None
    assert free_spot((8, 8), (64, 64), whole, 0.02, rng) is not None
    assert free_spot((65, 8), (64, 64), np.zeros((0, 4)), 1.0, rng) is None


def test_objects_of_lists_every_rare_object() -> None:
    classes = [np.array([[0.0], [1.0]]), np.array([[0.0]]), np.array([[1.0], [1.0]])]
    assert objects_of(classes, [1]) == {1: [(0, 1), (2, 0), (2, 1)]}


def rare_dataset(root: Path, images: int = 30) -> tuple[Path, list[np.ndarray]]:
    """64 x 64 grey images with one or two blue 12 px squares ('common'); images 0, 10 and 20 also hold a
    6 x 6 'rare' object of a texture of its own. Returns the images folder and the rare textures (RGB)."""
    rng = np.random.default_rng(1)
    written, textures = [], []
    for i in range(images):
        pixels = np.full((64, 64, 3), 128, dtype=np.uint8)
        boxes = []
        for k in range(1 + i % 2):
            x, y = 4 + 24 * k, 4 + 8 * (i % 3)
            pixels[y : y + 12, x : x + 12] = (0, 0, 255)
            boxes.append((0, x, y, x + 12, y + 12))
        if i % 10 == 0:
            texture = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
            pixels[50:56, 40:46] = texture
            boxes.append((1, 40, 50, 46, 56))
            textures.append(texture)
        written.append((pixels, boxes))
    return write_dataset(root, written, NAMES), textures


def copy_paste_dataset(images: Path, p: float, max_pastes: int = 3):
    paste = CopyPasteRare(classes=["rare"], p=p, max_pastes=max_pastes, max_overlap=0.1)
    options = DataOptions(thin_boxes=ThinBoxes(), copy_paste=paste, copy_paste_class_ids=(1,))
    return stagerun_dataset(images, NAMES, options, **NO_COLOUR_OR_FLIP)


def test_pasted_boxes_are_inside_the_image_and_hold_the_rare_objects_pixels(tmp_path: Path) -> None:
    images, textures = rare_dataset(tmp_path)
    dataset = copy_paste_dataset(images, p=1.0)
    paste = dataset.transforms.transforms[1]
    assert isinstance(paste, RareCopyPaste)  # right after the mosaic + affine block
    pasted_seen = 0
    for seed in range(20):
        random.seed(seed)
        np.random.seed(seed)
        labels = dataset.transforms.transforms[0](dataset.get_image_and_label(seed % len(dataset)))
        before = len(labels["cls"])
        labels = paste(labels)
        boxes, image = labels["instances"].bboxes, labels["img"]
        new = boxes[before:]
        assert len(new) == len(labels["cls"]) - before >= 1
        assert (labels["cls"][before:] == 1).all()
        for k, (x1, y1, x2, y2) in enumerate(new.astype(int)):
            assert 0 <= x1 < x2 <= image.shape[1] and 0 <= y1 < y2 <= image.shape[0]
            assert np.allclose(new[k], [x1, y1, x2, y2])  # whole pixels: the crop's own rectangle
            region = image[y1:y2, x1:x2][..., ::-1]  # the pipeline holds BGR
            assert any(np.array_equal(region, texture) for texture in textures)
            assert (covered_share(new[k].astype(float), boxes[: before + k].astype(float)) <= 0.1).all()
        pasted_seen += len(new)
    assert pasted_seen >= 20


def test_rare_instances_rise_by_the_expected_amount(tmp_path: Path) -> None:
    images, _ = rare_dataset(tmp_path)
    with_paste, without = copy_paste_dataset(images, p=0.5), copy_paste_dataset(images, p=0.0)
    samples = 300
    added = pasted = 0
    for seed in range(samples):
        item = sample(with_paste, seed % 30, seed)
        plain = sample(without, seed % 30, seed)
        added += int((item["cls"] == 1).sum()) - int((plain["cls"] == 1).sum())
        pasted += item[TALLY_KEY]["pasted"].get(1, 0)
    # per sample: pastes happen with p = 0.5, then 1, 2 or 3 of them: mean 1.0, variance 0.5 * 14/3 - 1 = 4/3
    expected, sigma = samples * 1.0, math.sqrt(samples * 4 / 3)
    assert added == pasted
    assert abs(added - expected) < 5 * sigma


def test_counts_come_back_from_loader_worker_processes(tmp_path: Path) -> None:
    """With workers the dataset runs in other processes; its per-sample counts travel in the batch."""
    from ultralytics.data.build import build_dataloader

    images, _ = rare_dataset(tmp_path)
    loader = build_dataloader(
        copy_paste_dataset(images, p=1.0), batch=6, workers=2, shuffle=True, rank=-1, device="cpu"
    )
    try:
        assert loader.num_workers == 2
        batches = list(loader)
    finally:
        loader.close()
    tallies = [tally for batch in batches for tally in batch[TALLY_KEY]]
    assert len(tallies) == 30
    pasted = sum(tally["pasted"].get(1, 0) for tally in tallies)
    rare_out = sum(int((batch["cls"] == 1).sum()) for batch in batches)
    assert 30 <= pasted <= 90 and rare_out >= pasted  # 1-3 pastes per image, plus rare objects of their own
