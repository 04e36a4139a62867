"""Thin boxes through augmentation on omr-bench: a sample of augmented training images (mosaic and the
affine step, Ultralytics' default hyperparameters) through plain Ultralytics and through stagerun's
pipeline, with the same random draws. Per class: boxes in the frame as they enter the affine step, and
boxes coming out of the pipeline.

    .venv/bin/python bench/thin_boxes.py [--images 64] [--imgsz 320 640]
"""

from __future__ import annotations

import argparse
import random

import numpy as np
from omr import THIN_CLASSES, omr_data_yaml
from ultralytics.cfg import get_cfg
from ultralytics.data.build import build_yolo_dataset
from ultralytics.data.utils import check_det_dataset

from shared.stage_kinds.training_options import ThinBoxes
from worker.ultralytics_ext.dataset import TALLY_KEY, DataOptions, training_dataset


def share(count: int, total: int) -> str:
    return f"{count / total:.2f}" if total else "-"


def class_counts(classes, nc: int) -> np.ndarray:
    return np.bincount(np.asarray(classes, dtype=np.int64).reshape(-1), minlength=nc)


def run(data: dict, imgsz: int, indices: list[int]) -> dict[str, np.ndarray]:
    nc = data["nc"]
    datasets = {
        "plain": build_yolo_dataset(get_cfg(overrides={"imgsz": imgsz}), data["train"], 16, data, mode="train"),
        "counting": training_dataset(
            get_cfg(overrides={"imgsz": imgsz}), data["train"], 16, data, 32, DataOptions(thin_boxes=None)
        ),
        "ours": training_dataset(
            get_cfg(overrides={"imgsz": imgsz}), data["train"], 16, data, 32, DataOptions(thin_boxes=ThinBoxes())
        ),
    }
    totals = {name: np.zeros(nc, dtype=int) for name in ("in_frame", "plain", "counting", "ours")}
    for seed, index in enumerate(indices):
        for name, dataset in datasets.items():
            random.seed(seed)
            np.random.seed(seed)
            item = dataset[index]
            totals[name] += class_counts(item["cls"].numpy(), nc)
            if name == "counting":  # Ultralytics' rule: what entered the affine step in the frame
                tally = item[TALLY_KEY]
                for kind in ("kept", "removed"):
                    for class_id, n in tally[kind].items():
                        totals["in_frame"][class_id] += n
    return totals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=128, help="augmented images per size (8 batches of 16)")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    args = parser.parse_args()
    data = check_det_dataset(str(omr_data_yaml()))
    names = [data["names"][i] for i in range(data["nc"])]
    rows = [*THIN_CLASSES, "notehead"]
    for imgsz in args.imgsz:
        n_train = len(list((data["path"] / "images" / "train").glob("*.png")))
        indices = np.random.default_rng(0).choice(n_train, size=args.images, replace=False).tolist()
        totals = run(data, imgsz, indices)
        assert (totals["plain"] == totals["counting"]).all(), "the counting affine step must keep Ultralytics' rule"
        print(f"\nimgsz {imgsz}, {args.images} augmented training images (mosaic 1.0, scale 0.5, translate 0.1)")
        print(
            f"{'class':16s} {'in frame':>9s} {'plain out':>10s} {'ours out':>9s} {'plain kept':>11s} {'ours kept':>10s}"
        )
        for name in rows:
            c = names.index(name)
            frame, plain, ours = totals["in_frame"][c], totals["plain"][c], totals["ours"][c]
            print(f"{name:16s} {frame:9d} {plain:10d} {ours:9d} {share(plain, frame):>11s} {share(ours, frame):>10s}")


if __name__ == "__main__":
    main()
