"""Plain Ultralytics vs the stagerun train stage on ../shared/omr-bench, same model, data, seed and epochs,
both measured by the same validation code (Ultralytics' ``val``) on val and test.

    python bench/train_quality_omr.py --epochs 3 --fraction 0.25 --device cpu
    python bench/train_quality_omr.py --epochs 20 --device 0          # the issue's protocol, on a GPU

--runs maps a run's label to its stagerun TrainStage options (JSON; null = plain Ultralytics). The
default compares plain Ultralytics with the issue-4 recipe for rare and thin classes: thin-box-safe
augmentation (on by default), automatic class weights and weighted sampling."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omr import THIN_CLASSES, omr_data_yaml  # noqa: E402

from shared.schemas.pipeline import TrainStage  # noqa: E402
from worker.ultralytics_ext.offline import prepare_offline  # noqa: E402

DEFAULT_RUNS = {"plain": None, "stagerun": {"class_weights": "sqrt_inverse", "sampling": {"weights": "sqrt_inverse"}}}


def train(label: str, data: Path, project: Path, args: argparse.Namespace, options: dict | None) -> tuple[Path, float]:
    from ultralytics import YOLO

    common = {
        "data": str(data),
        "epochs": args.epochs,
        "imgsz": args.imgsz,
        "batch": args.batch,
        "seed": args.seed,
        "deterministic": True,
        "fraction": args.fraction,
        "device": args.device,
        "workers": args.workers,
        "project": str(project),
        "name": label,
        "exist_ok": True,
        "plots": False,
        "val": False,
    }
    model = YOLO("yolov8n.yaml")
    started = time.perf_counter()
    if options is None:
        model.train(**common)
    else:
        from worker.ultralytics_ext.trainer import StagerunTrainer

        spec = TrainStage(type="train", epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, **options)
        model.train(trainer=StagerunTrainer.for_stage(spec, None), **common)
    return project / label / "weights" / "best.pt", time.perf_counter() - started


def per_class(weights: Path, data: Path, split: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    from ultralytics import YOLO

    metrics = YOLO(str(weights)).val(
        data=str(data),
        split=split,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        plots=False,
        verbose=False,
        workers=args.workers,
    )
    table = {
        "all": {"mAP50": float(metrics.box.map50), "mAP50-95": float(metrics.box.map), "recall": float(metrics.box.mr)}
    }
    for position, class_id in enumerate(metrics.box.ap_class_index):
        p, r, ap50, ap = metrics.box.class_result(position)
        table[metrics.names[int(class_id)]] = {"mAP50": float(ap50), "mAP50-95": float(ap), "recall": float(r)}
    return table


def print_table(split: str, results: dict[str, dict[str, dict[str, float]]]) -> None:
    runs = list(results)
    classes = (
        [c for c in THIN_CLASSES if c in results[runs[0]]]
        + [c for c in results[runs[0]] if c not in THIN_CLASSES and c != "all"]
        + ["all"]
    )
    header = " | ".join(f"{run} mAP50 | {run} R" for run in runs)
    print(f"\n{split}\n| class | {header} |\n|---|" + "---|" * (2 * len(runs)))
    for name in classes:
        cells = []
        for run in runs:
            row = results[run].get(name, {"mAP50": 0.0, "recall": 0.0})
            cells += [f"{row['mAP50']:.3f}", f"{row['recall']:.3f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--fraction", type=float, default=1.0, help="share of the training split to use")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=json.loads, default=DEFAULT_RUNS, help="label -> TrainStage options or null")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="stagerun-omr-quality-"))
    prepare_offline(work / "yolo-config")
    data = omr_data_yaml()
    runs = args.runs
    figures: dict = {"args": {k: v for k, v in vars(args).items() if k != "out"}, "seconds": {}, "splits": {}}
    weights = {}
    for label, options in runs.items():
        weights[label], figures["seconds"][label] = train(label, data, work / "runs", args, options)
        print(f"{label}: trained {args.epochs} epoch(s) in {figures['seconds'][label]:.0f}s", flush=True)
    for split in ("val", "test"):
        figures["splits"][split] = {label: per_class(weights[label], data, split, args) for label in runs}
        print_table(split, figures["splits"][split])
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
