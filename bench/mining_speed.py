"""Mining throughput vs Ultralytics' own validation over the same images and weights, alternated in
one run. Mining = the inference pass plus matching, difficulty, the error breakdown and writing
stats.json / detailed.json. Prints images/s of both and the ratio (target >= 0.9).

    .venv/bin/python bench/mining_speed.py [--images 200] [--imgsz 160] [--repeats 3] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from common import new_home

os.environ.setdefault("YOLO_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from client.synthetic import CLASS_NAMES, make_dataset

    home = new_home("mining")
    os.environ["YOLO_CONFIG_DIR"] = str(home / "yolo")
    from ultralytics import YOLO

    from worker.mining.inference import mine_split
    from worker.mining.matching import Thresholds

    data = make_dataset(home / "data", train=48, val=args.images, size=args.imgsz, seed=0)
    YOLO("yolov8n.yaml").train(
        data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=16, workers=0, seed=0, device=args.device,
        project=str(home / "runs"), name="train", exist_ok=True, plots=False, verbose=False,
    )  # fmt: skip
    weights = str(home / "runs" / "train" / "weights" / "best.pt")
    common = {"data": str(data), "imgsz": args.imgsz, "batch": 16, "device": args.device, "verbose": False}
    common.update(project=str(home / "runs"), name="val", exist_ok=True)
    names = list(CLASS_NAMES)

    def plain_val() -> float:
        start = time.perf_counter()
        YOLO(weights).val(**common, plots=False)
        return time.perf_counter() - start

    def mining() -> float:
        start = time.perf_counter()
        miner, breakdown, _ = mine_split(weights, common, names, Thresholds())
        stats = {**miner.stats(1.5), "error_breakdown": breakdown.result(names)}
        (home / "stats.json").write_text(json.dumps(stats))
        (home / "detailed.json").write_text(json.dumps(miner.detailed()))
        return time.perf_counter() - start

    plain_val(), mining()  # warm-up: label cache, first model load
    val_times, mine_times = [], []
    for repeat in range(args.repeats):  # alternate which goes first: the machine is shared
        first, second = (plain_val, mining) if repeat % 2 == 0 else (mining, plain_val)
        times = {first: first(), second: second()}
        val_times.append(times[plain_val])
        mine_times.append(times[mining])
    val_rate = args.images / statistics.median(val_times)
    mine_rate = args.images / statistics.median(mine_times)
    print(f"images {args.images} imgsz {args.imgsz} device {args.device} repeats {args.repeats}")
    print(f"ultralytics model.val()  {val_rate:8.1f} images/s  (median of {[round(t, 2) for t in val_times]} s)")
    print(f"stagerun mining          {mine_rate:8.1f} images/s  (median of {[round(t, 2) for t in mine_times]} s)")
    print(
        f"ratio mining / val: {mine_rate / val_rate:.3f} (median), {min(val_times) / min(mine_times):.3f} (best runs)"
    )


if __name__ == "__main__":
    main()
