"""Where one class's boxes go wrong on omr-bench (default: beam on val): each ground-truth box is matched to its
best same-class prediction (plain ``YOLO.predict`` at conf 0.25, so weights without a widen_thin pad, or classes
it does not pad), and the boxes found but under IoU 0.5 are described: their median size against the matched
ones, which sides are off, and whether the prediction is too short or too long.

    python bench/beam_localization.py WEIGHTS [--split val] [--class-id 2] [--imgsz 320]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402
from omr import omr_data_yaml  # noqa: E402


def xyxy(rows: np.ndarray, size: int) -> np.ndarray:
    x, y, w, h = (rows[:, k] * size for k in range(4))
    return np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--split", default="val")
    parser.add_argument("--class-id", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch
    from ultralytics import YOLO
    from ultralytics.utils.metrics import box_iou

    root = Path(yaml.safe_load(omr_data_yaml().read_text())["path"])
    images = sorted((root / "images" / args.split).glob("*.png"))
    model = YOLO(args.weights)
    rows = []  # best IoU, then prediction minus truth for x1 y1 x2 y2, then the true box
    for start in range(0, len(images), 32):
        for result in model.predict(images[start : start + 32], imgsz=args.imgsz, conf=0.25, verbose=False, device=args.device):
            label = root / "labels" / args.split / (Path(result.path).stem + ".txt")
            table = np.loadtxt(label, ndmin=2)
            truth = xyxy(table[table[:, 0] == args.class_id, 1:5], result.orig_shape[1]) if table.size else np.zeros((0, 4))
            if not len(truth):
                continue
            predicted = result.boxes.xyxy[result.boxes.cls == args.class_id].numpy()
            if not len(predicted):
                rows += [(0.0, *(np.nan,) * 4, *box) for box in truth]
                continue
            iou = box_iou(torch.tensor(truth), torch.tensor(predicted)).numpy()
            for k, box in enumerate(truth):
                best = iou[k].argmax()
                rows.append((iou[k, best], *(predicted[best] - box), *box))
    table = np.array(rows)
    iou = table[:, 0]
    missed = (iou > 0) & (iou < 0.5)
    matched = iou >= 0.5
    width = table[:, 7] - table[:, 5]
    height = table[:, 8] - table[:, 6]
    print(f"boxes {len(table)}  found {np.mean(iou > 0):.1%}  IoU>=0.5 {np.mean(matched):.1%}")
    for name, chosen in (("found, IoU < 0.5", missed), ("IoU >= 0.5", matched)):
        if chosen.any():
            errors = np.round(np.median(np.abs(table[chosen, 1:5]), 0), 2)
            print(
                f"{name}: {int(chosen.sum())} boxes, median size {np.median(width[chosen]):.1f} x "
                f"{np.median(height[chosen]):.1f} px, median |error| x1 y1 x2 y2 {errors.tolist()}"
            )
    if missed.any():
        horizontal = np.abs(table[missed, 1]) + np.abs(table[missed, 3])
        vertical = np.abs(table[missed, 2]) + np.abs(table[missed, 4])
        shorter = (table[missed, 3] - table[missed, 1]) < 0
        print(
            f"found, IoU < 0.5: horizontal error larger {np.mean(horizontal > vertical):.0%}, "
            f"predicted narrower than the truth {np.mean(shorter):.0%}"
        )


if __name__ == "__main__":
    main()
