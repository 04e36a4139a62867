"""Plain Ultralytics vs stagerun train-stage configurations on ../shared/omr-bench: same model, data, seed and
epochs, every run measured by the same validation pass (Ultralytics' validator; stagerun's narrowing of
``widen_thin`` weights where they carry a pad) on val and test, with per-class mAP50, mAP50-95, recall and
the localization report.

    # the issue's protocol: plain and stagerun's default train stage, each in its own background process
    python bench/train_quality_omr.py --epochs 20 --parallel --work /work/runs/omr --doc docs/benchmarks.md
    # one configuration (e.g. under nohup), then the table over every run in the folder
    python bench/train_quality_omr.py --epochs 20 --work /work/runs/omr --runs '{"p2": {"model": "yolov8n-p2.yaml"}}'
    python bench/train_quality_omr.py --work /work/runs/omr --report
    # measure weights trained elsewhere
    python bench/train_quality_omr.py --work /work/runs/omr --evaluate plain=/path/to/best.pt

--runs maps a label to null (plain Ultralytics) or to stagerun TrainStage options ({} = the default train
stage, whose automatic recipe chooses from the data); "model" picks the model yaml for that run."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omr import THIN_CLASSES, omr_data_yaml  # noqa: E402

from worker.ultralytics_ext.offline import prepare_offline  # noqa: E402

DEFAULT_RUNS = {"plain": None, "stagerun": {}}
SPLITS = ("val", "test")
RECORDED_INFO = (
    "automatic_recipe",
    "widen_thin",
    "class_weights",
    "box_class_weights",
    "box_iou",
    "widened_finest_level_only",
    "widened_topk",
    "widened_box_gradient",
    "coarse_level_classes",
)


class Recorded:
    """Collects what the trainer records (a stage's reporter would write it to stage.info)."""

    def __init__(self) -> None:
        self.info: dict = {}

    def record(self, topic: str, value: object) -> None:
        self.info[topic] = value


def epoch_seconds(results_csv: Path) -> list[float]:
    import csv

    with results_csv.open() as handle:
        times = [float(row["time"]) for row in csv.DictReader(handle)]
    return [round(b - a, 2) for a, b in zip([0.0, *times], times, strict=False)]


def train(label: str, data: Path, work: Path, args: argparse.Namespace, options: dict | None) -> dict:
    from ultralytics import YOLO

    options = None if options is None else dict(options)
    model_yaml = (options or {}).pop("model", None) or args.model
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
        "project": str(work / "runs"),
        "name": label,
        "exist_ok": True,
        "plots": False,
        "val": False,
    }
    model = YOLO(model_yaml)
    recorded = Recorded()
    started = time.perf_counter()
    if options is None:
        model.train(**common)
    else:
        from shared.schemas.pipeline import TrainStage
        from worker.ultralytics_ext.trainer import StagerunTrainer

        spec = TrainStage(type="train", epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, **options)
        model.train(trainer=StagerunTrainer.for_stage(spec, recorded), **common)
    seconds = time.perf_counter() - started
    save_dir = Path(model.trainer.save_dir)
    return {
        "weights": str(save_dir / "weights" / "best.pt"),
        "model": model_yaml,
        "parameters": sum(p.numel() for p in model.model.parameters()),
        "train_seconds": round(seconds, 1),
        "epoch_seconds": epoch_seconds(save_dir / "results.csv"),
        "info": {k: v for k, v in recorded.info.items() if k in RECORDED_INFO},
    }


def evaluate(weights: str, data: Path, split: str, args: argparse.Namespace) -> dict:
    from ultralytics import YOLO

    from worker.mining.capture import validator_with_sink
    from worker.mining.localization import LocalizationAccumulator
    from worker.ultralytics_ext.metrics import detection_summary

    yolo = YOLO(weights)
    names = [yolo.names[i] for i in range(len(yolo.names))]
    localization = LocalizationAccumulator(len(names), conf=0.25)

    def sink(image) -> None:
        localization.add(image.gt_boxes, image.gt_cls, image.pred_boxes, image.pred_cls, image.pred_conf)

    metrics = yolo.val(
        validator=validator_with_sink(sink),
        data=str(data),
        split=split,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        plots=False,
        verbose=False,
        workers=args.workers,
    )
    summary = detection_summary(metrics, names)
    table = {"all": {k: summary["overall"][k] for k in ("mAP50", "mAP50-95", "recall")}}
    for row in summary["per_class"]:
        table[row["name"]] = {k: row[k] for k in ("mAP50", "mAP50-95", "recall", "instances")}
    return {"classes": table, "localization": localization.result(names)}


def run_one(label: str, options: dict | None, data: Path, args: argparse.Namespace, weights: str | None = None) -> dict:
    import torch

    result: dict = {
        "label": label,
        "options": options,
        "epochs": args.epochs,
        "imgsz": args.imgsz,
        "batch": args.batch,
        "fraction": args.fraction,
        "seed": args.seed,
        "device": args.device if args.device != "cpu" else f"cpu ({os.cpu_count()} cores, torch {torch.__version__})",
    }
    if weights is None:
        result.update(train(label, data, args.work, args, options))
    else:
        result["weights"] = weights
    result["splits"] = {split: evaluate(result["weights"], data, split, args) for split in SPLITS}
    (args.work / f"{label}.json").write_text(json.dumps(result, indent=2))
    return result


def markdown(results: list[dict]) -> str:
    """One table per split: mAP50 per class for every run, then the localization columns of the thin classes."""
    if not results:
        return "no runs\n"
    lines = []
    for run in results:
        epochs = run.get("epoch_seconds") or []
        mean_epoch = f"{sum(epochs) / len(epochs):.0f} s/epoch" if epochs else "epoch time not measured here"
        lines.append(
            f"- **{run['label']}**: options `{json.dumps(run['options'])}`, {run.get('model', '?')}, "
            f"{run['epochs']} epochs, imgsz {run['imgsz']}, batch {run['batch']}, fraction {run['fraction']}, "
            f"{run['device']}: train {run.get('train_seconds', '?')} s ({mean_epoch})"
        )
    for split in SPLITS:
        first = results[0]["splits"][split]["classes"]
        classes = [c for c in THIN_CLASSES if c in first] + [c for c in first if c not in THIN_CLASSES and c != "all"]
        labels = [run["label"] for run in results]
        lines += ["", f"**{split}**: mAP50 (mAP50-95)", "", "| class | " + " | ".join(labels) + " |"]
        lines.append("|---|" + "---|" * len(labels))
        for name in [*classes, "all"]:
            cells = []
            for run in results:
                row = run["splits"][split]["classes"].get(name, {})
                value = row.get("mAP50")
                cells.append("-" if value is None else f"{value:.3f} ({row['mAP50-95']:.3f})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"**{split}** localization (conf 0.25, each ground-truth box to its best same-class prediction): "
            "found at IoU>0 / IoU>=0.5 / IoU>=0.75, median width error px, median centre error px",
            "",
            "| class | " + " | ".join(labels) + " |",
            "|---|" + "---|" * len(labels),
        ]
        for name in THIN_CLASSES:
            cells = []
            for run in results:
                row = next((r for r in run["splits"][split]["localization"]["per_class"] if r["name"] == name), None)
                if row is None or not row["instances"] or row["found"] is None:
                    cells.append("-")
                    continue
                width = "-" if row["median_width_error_px"] is None else f"{row['median_width_error_px']:+.2f}"
                centre = "-" if row["median_centre_error_px"] is None else f"{row['median_centre_error_px']:.2f}"
                cells.append(f"{row['found']:.0%} / {row['iou_0.5']:.0%} / {row['iou_0.75']:.0%}, {width}, {centre}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def launch_parallel(runs: dict, args: argparse.Namespace) -> None:
    """Each run in a background process of its own (its log in the work folder); wait for all."""
    processes = []
    for label, options in runs.items():
        command = [sys.executable, __file__, *_forwarded(args), "--runs", json.dumps({label: options})]
        log = (args.work / f"{label}.log").open("w")
        processes.append((label, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log))
        print(f"{label}: started (pid {processes[-1][1].pid}, log {args.work / f'{label}.log'})", flush=True)
    for label, process, log in processes:
        code = process.wait()
        log.close()
        print(f"{label}: exit {code}", flush=True)


def _forwarded(args: argparse.Namespace) -> list[str]:
    out = []
    for key in ("epochs", "imgsz", "batch", "fraction", "seed", "device", "workers", "model", "work"):
        out += [f"--{key}", str(getattr(args, key))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--fraction", type=float, default=1.0, help="share of the training split to use")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default="yolov8n.yaml")
    parser.add_argument("--runs", type=json.loads, default=DEFAULT_RUNS, help="label -> TrainStage options or null")
    parser.add_argument("--work", type=Path, help="runs, per-run JSON and logs (default: a new temporary folder)")
    parser.add_argument("--parallel", action="store_true", help="each run in a background process of its own")
    parser.add_argument("--evaluate", action="append", default=[], metavar="LABEL=WEIGHTS", help="measure weights only")
    parser.add_argument("--report", action="store_true", help="only merge the JSON files already in --work")
    parser.add_argument("--out", type=Path, help="write every run's figures as one JSON file here")
    parser.add_argument("--doc", type=Path, help="append the tables to this markdown file")
    args = parser.parse_args()
    args.work = (args.work or Path(tempfile.mkdtemp(prefix="stagerun-omr-quality-"))).resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    prepare_offline(args.work / "yolo-config")
    data = omr_data_yaml()

    if args.evaluate:
        for item in args.evaluate:
            label, weights = item.split("=", 1)
            run_one(label, None, data, args, weights=weights)
    elif args.parallel and len(args.runs) > 1:
        launch_parallel(args.runs, args)
    elif not args.report:
        for label, options in args.runs.items():
            run_one(label, options, data, args)
            print(f"{label}: done", flush=True)

    results = [json.loads(p.read_text()) for p in sorted(args.work.glob("*.json"))]
    table = markdown(results)
    print(table)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    if args.doc:
        command = "python bench/train_quality_omr.py " + " ".join(sys.argv[1:])
        with args.doc.open("a") as handle:
            handle.write(f"\n### omr-bench, {time.strftime('%Y-%m-%d')}: `{command}`\n\n{table}")


if __name__ == "__main__":
    main()
