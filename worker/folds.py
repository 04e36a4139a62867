"""K folds of a training split, stratified by the classes present in each image (iterative stratification,
Sechidis et al. 2011): the rarest class is dealt out first, one image at a time to the fold that still wants it
most, so a class with at least k images lands in every fold, and the folds stay within one image of equal size.

Each fold is written as a dataset of its own beside the k-fold stage's outputs: a data.yaml whose ``path`` is the
job's dataset folder, with train and val as list files of that dataset's images (nothing is copied)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import yaml

from shared.datasets.data_yaml import DatasetRef
from shared.datasets.files import label_path_for, split_images


def image_classes(images: Sequence[Path], nc: int) -> list[frozenset[int]]:
    """The classes each image's label file holds (an image without labels holds none)."""
    found = []
    for image in images:
        label = label_path_for(image)
        classes: set[int] = set()
        if label.is_file():
            for line in label.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split()
                if parts and parts[0].isdigit() and int(parts[0]) < nc:
                    classes.add(int(parts[0]))
        found.append(frozenset(classes))
    return found


def stratified_folds(classes: Sequence[frozenset[int]], k: int, seed: int = 0) -> list[int]:
    """The fold (0..k-1) of each image."""
    n = len(classes)
    if k < 2 or n < k:
        raise ValueError(f"{n} image(s) cannot make {k} folds")
    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)
    capacity = [n // k + (1 if fold < n % k else 0) for fold in range(k)]
    per_class: dict[int, list[int]] = {}
    for image in order:
        for cls in classes[image]:
            per_class.setdefault(cls, []).append(image)
    wanted = {cls: [len(members) / k] * k for cls, members in per_class.items()}
    fold_of = [-1] * n
    remaining = {cls: list(members) for cls, members in per_class.items()}
    while True:
        open_classes = [cls for cls, members in remaining.items() if members]
        if not open_classes:
            break
        rarest = min(open_classes, key=lambda cls: (len(remaining[cls]), cls))
        for image in list(remaining[rarest]):
            if fold_of[image] != -1:
                continue
            candidates = [fold for fold in range(k) if capacity[fold] > 0]
            best = max(candidates, key=lambda fold: (wanted[rarest][fold], capacity[fold], -fold))
            fold_of[image] = best
            capacity[best] -= 1
            for cls in classes[image]:
                wanted[cls][best] -= 1
        for cls in remaining:
            remaining[cls] = [image for image in remaining[cls] if fold_of[image] == -1]
    for image in order:  # images without labels fill what is left
        if fold_of[image] == -1:
            best = max(range(k), key=lambda fold: (capacity[fold], -fold))
            fold_of[image] = best
            capacity[best] -= 1
    return fold_of


def write_folds(dataset: DatasetRef, folder: Path, k: int, seed: int) -> list[dict]:
    """Write ``fold-<i>/data.yaml`` (+ train.txt, val.txt) under ``folder`` for the dataset's train split, once:
    folds already written are read back, so a stage run again uses the same folds. Returns each fold's counts."""
    images = split_images(dataset.splits["train"])
    classes = image_classes(images, len(dataset.names))
    summary_path = folder / "folds.yaml"
    if summary_path.is_file():
        return yaml.safe_load(summary_path.read_text())["folds"]
    fold_of = stratified_folds(classes, k, seed)
    folds = []
    for fold in range(k):
        fold_dir = folder / f"fold-{fold}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        val = [str(image) for image, owner in zip(images, fold_of, strict=True) if owner == fold]
        train = [str(image) for image, owner in zip(images, fold_of, strict=True) if owner != fold]
        (fold_dir / "train.txt").write_text("\n".join(train) + "\n")
        (fold_dir / "val.txt").write_text("\n".join(val) + "\n")
        data = {"path": str(dataset.root), "train": str(fold_dir / "train.txt"), "val": str(fold_dir / "val.txt"),
                "names": dict(enumerate(dataset.names))}
        (fold_dir / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        present = [0] * len(dataset.names)
        for image_classes_, owner in zip(classes, fold_of, strict=True):
            if owner == fold:
                for cls in image_classes_:
                    present[cls] += 1
        folds.append({"fold": fold, "train_images": len(train), "val_images": len(val),
                      "val_images_per_class": dict(zip(dataset.names, present, strict=True))})
    summary_path.write_text(yaml.safe_dump({"k": k, "seed": seed, "folds": folds}, sort_keys=False))
    return folds
