"""Mining on omr-bench with a briefly trained model: the per-class stats table a user would read
(how many barline / barline_double objects it finds missed, misclassified, found with low confidence).

Trains ``yolov8n.yaml`` on a seeded subset of the training tiles (CPU by default), then mines the
val and test splits with the mine stage's defaults. The benchmark is mirrored into a temp folder
of links, so Ultralytics' label caches never land in the shared benchmark folder.

    .venv/bin/python bench/mining_omr.py [--bench /work/shared/omr-bench] [--train-images 300] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import yaml
from common import new_home

os.environ.setdefault("YOLO_OFFLINE", "1")


def mirror(bench: Path, target: Path, split: str, limit: int | None, seed: int) -> int:
    """Link a split's images and labels (all, or a seeded sample of ``limit``) under ``target``."""
    images = sorted((bench / "images" / split).iterdir())
    if limit is not None and limit < len(images):
        chosen = np.random.default_rng(seed).choice(len(images), size=limit, replace=False)
        images = [images[i] for i in sorted(chosen)]
    for sub in ("images", "labels"):
        (target / sub / split).mkdir(parents=True, exist_ok=True)
    for image in images:
        (target / "images" / split / image.name).symlink_to(image)
        label = bench / "labels" / split / f"{image.stem}.txt"
        if label.exists():
            (target / "labels" / split / label.name).symlink_to(label)
    return len(images)


def table(stats: dict) -> str:
    columns = ("ground_truth", "matched", "false_negative", "low_confidence", "misclassification")
    columns += ("duplicate", "localization", "hard_negative", "hard_images")
    short = ("gt", "matched", "missed", "low_conf", "miscls", "dup", "loc", "hard_neg", "hard_img")
    lines = [f"{'class':<16}" + "".join(f"{s:>9}" for s in short)]
    for row in stats["per_class"]:
        lines.append(f"{row['name']:<16}" + "".join(f"{row[c]:>9}" for c in columns))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", type=Path, default=Path("/work/shared/omr-bench"))
    parser.add_argument("--train-images", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    args = parser.parse_args()

    home = new_home("omr")
    os.environ["YOLO_CONFIG_DIR"] = str(home / "yolo")
    from ultralytics import YOLO

    from worker.mining.inference import mine_split
    from worker.mining.matching import Thresholds

    data_root = home / "omr"
    counts = {
        "train": mirror(args.bench, data_root, "train", args.train_images, args.seed),
        "val": mirror(args.bench, data_root, "val", None, args.seed),
        "test": mirror(args.bench, data_root, "test", None, args.seed),
    }
    names = yaml.safe_load((args.bench / "data.yaml").read_text())["names"]
    data = {"path": str(data_root), "train": "images/train", "val": "images/val", "test": "images/test"}
    data["names"] = names
    data_yaml = home / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    start = time.perf_counter()
    YOLO("yolov8n.yaml").train(
        data=str(data_yaml), epochs=args.epochs, imgsz=args.imgsz, batch=16, workers=0, seed=args.seed,
        device=args.device, project=str(home / "runs"), name="train", exist_ok=True, plots=False,
        val=False, warmup_epochs=args.warmup_epochs,  # validate only after the last epoch: CPU time goes to training
    )  # fmt: skip
    train_s = time.perf_counter() - start
    weights = str(home / "runs" / "train" / "weights" / "best.pt")
    class_names = [names[i] for i in sorted(names)]
    print(f"\nomr-bench: trained yolov8n.yaml {args.epochs} epochs, imgsz {args.imgsz}, {counts['train']} train tiles")
    print(f"(seed {args.seed}, warmup {args.warmup_epochs} epochs, {args.device}, {train_s:.0f} s)")
    print(f"mine-stage defaults {Thresholds()}")
    for split in ("val", "test"):
        val_args = {"data": str(data_yaml), "split": split, "imgsz": args.imgsz, "batch": 16, "device": args.device}
        val_args.update(project=str(home / "runs"), name=f"mine-{split}", exist_ok=True, verbose=False)
        start = time.perf_counter()
        miner, breakdown, _ = mine_split(weights, val_args, class_names, Thresholds())
        seconds = time.perf_counter() - start
        stats = miner.stats(1.5)
        errors = breakdown.result(class_names)
        (home / f"stats-{split}.json").write_text(json.dumps({**stats, "error_breakdown": errors}, indent=2))
        print(
            f"\n== {split}: {stats['images']} tiles, {stats['hard_images']} hard, {seconds:.1f} s, mAP50 {errors['mAP50']}"
        )
        print(table(stats))
        overall = ", ".join(f"{k} {v['count']} (dAP50 {v['dAP50']})" for k, v in errors["overall"].items())
        print(f"error breakdown: {overall}")
    print(f"\nfull stats: {home}/stats-*.json")


if __name__ == "__main__":
    main()
