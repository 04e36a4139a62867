"""Epoch time of stagerun's default train stage (the automatic recipe: thin-box keeping, thin-aware assigner,
widen_thin, class weights, weighted sampling) against plain Ultralytics on omr-bench, alternated in one process,
the same share of the training split, seed and settings. Prints wall and CPU seconds per epoch and their ratio
(issue 12's bar: within 1.10x).

    python bench/recipe_overhead.py [--repeats 2] [--epochs 2] [--fraction 0.25] [--imgsz 320] [--device cpu]
        [--runs '{"label": {TrainStage options}}']

--runs adds train-stage configurations beside plain and the default (each compared with plain).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omr import omr_data_yaml  # noqa: E402


def epoch_seconds(trainer: type, data_yaml: Path, out: Path, name: str, args: argparse.Namespace) -> list[tuple]:
    """(wall, process CPU) seconds of each epoch's batches (validation off)."""
    from ultralytics import YOLO

    starts, seconds = [], []
    yolo = YOLO("yolov8n.yaml")
    yolo.add_callback("on_train_epoch_start", lambda _: starts.append((time.perf_counter(), time.process_time())))
    yolo.add_callback(
        "on_train_epoch_end",
        lambda _: seconds.append((time.perf_counter() - starts[-1][0], time.process_time() - starts[-1][1])),
    )
    yolo.train(
        trainer=trainer, data=str(data_yaml), project=str(out), name=name, exist_ok=True, device=args.device,
        epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, fraction=args.fraction, workers=args.workers,
        seed=0, deterministic=True, plots=False, val=False, verbose=False,
    )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=json.loads, default={}, help="more labels -> TrainStage options")
    args = parser.parse_args()

    from ultralytics.models.yolo.detect import DetectionTrainer

    from shared.schemas.pipeline import TrainStage
    from worker.ultralytics_ext.offline import prepare_offline
    from worker.ultralytics_ext.trainer import StagerunTrainer

    work = Path(tempfile.mkdtemp(prefix="stagerun-recipe-overhead-"))
    prepare_offline(work / "yolo-config")
    data = omr_data_yaml()
    stage = TrainStage(type="train", epochs=args.epochs, imgsz=args.imgsz, batch=args.batch)
    variants = {"plain": DetectionTrainer, "stagerun default": StagerunTrainer.for_stage(stage, None)}
    for label, options in args.runs.items():
        named = TrainStage(type="train", epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, **options)
        variants[label] = StagerunTrainer.for_stage(named, None)
    epochs: dict[str, list[tuple]] = {name: [] for name in variants}
    for repeat in range(args.repeats):
        for name in list(variants) if repeat % 2 == 0 else list(reversed(variants)):
            seconds = epoch_seconds(variants[name], data, work / "runs", f"{name.replace(' ', '-')}-{repeat}", args)
            epochs[name].extend(seconds)
            print(f"repeat {repeat + 1}: {name:16s} " + " ".join(f"{w:.1f}s/{c:.1f}s" for w, c in seconds), flush=True)
    for measure, index in (("wall", 0), ("cpu", 1)):
        median = {name: statistics.median(s[index] for s in epochs[name]) for name in variants}
        plain = median.pop("plain")
        print(
            f"{measure:4s} s/epoch: plain {plain:.2f}  "
            + "  ".join(f"{name} {seconds:.2f} ratio {seconds / plain:.3f}" for name, seconds in median.items())
        )


if __name__ == "__main__":
    main()
