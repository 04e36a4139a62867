"""The hard-example dataset: Ultralytics layout under the mine stage's folder, for a train stage
with ``data: from_stage``. Files are hard-linked when the volume allows (else copied), so every
path stays inside the artifacts root."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import yaml

from shared.datasets.files import label_path_for, split_images
from worker.mining.report import MinedImage

__all__ = ["build_hard_dataset", "replay_count", "split_images"]

def replay_count(hard: int, replay: float, available: int) -> int:
    """Ordinary images to add so that they make a ``replay`` share of the whole: h * r / (1 - r)."""
    if hard == 0 or replay <= 0:
        return 0
    return min(available, round(hard * replay / (1.0 - replay)))


def _place(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def build_hard_dataset(
    root: Path,
    hard: list[MinedImage],
    hard_negative_images: list[MinedImage],
    train_images: list[Path],
    replay: float,
    names: list[str],
    val: list[Path],
    seed: int = 0,
) -> dict:
    """Write ``root/images/train``, ``root/labels/train`` and ``root/data.yaml``; returns the counts.

    Hard images keep their labels. Hard-negative images (confident detections on background) that
    are not already hard are added with their labels, which mark those regions as background; an
    image without a label file is added as a pure background image. Ordinary training images are
    drawn at random (seeded) for the replay share."""
    if root.exists():
        shutil.rmtree(root)
    images_dir, labels_dir = root / "images" / "train", root / "labels" / "train"
    images_dir.mkdir(parents=True)
    labels_dir.mkdir(parents=True)
    chosen = [Path(i.im_file) for i in hard]
    taken = {p.resolve() for p in chosen}
    negatives = [Path(i.im_file) for i in hard_negative_images if Path(i.im_file).resolve() not in taken]
    taken.update(p.resolve() for p in negatives)
    ordinary = [p for p in train_images if p.resolve() not in taken]
    count = replay_count(len(chosen) + len(negatives), replay, len(ordinary))
    rng = np.random.default_rng(seed)
    replayed = [ordinary[i] for i in sorted(rng.choice(len(ordinary), size=count, replace=False))] if count else []
    used: set[str] = set()
    for source in [*chosen, *negatives, *replayed]:
        name = source.name
        n = 1
        while name in used:
            name = f"{source.stem}_{n}{source.suffix}"
            n += 1
        used.add(name)
        _place(source, images_dir / name)
        labels = label_path_for(source)
        target_label = labels_dir / (Path(name).stem + ".txt")
        if labels.is_file():
            shutil.copyfile(labels, target_label)
        else:
            target_label.write_text("")
    data = {
        "path": str(root.resolve()),
        "train": "images/train",
        "val": [str(p) for p in val] if len(val) > 1 else str(val[0]),
        "names": dict(enumerate(names)),
        "nc": len(names),
    }
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return {"hard": len(chosen), "hard_negative": len(negatives), "replay": len(replayed), "total": len(used)}
