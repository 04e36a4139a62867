"""Thin-aware assigner on omr-bench: plain Ultralytics against each option combination, side by side.

Two measurements, each over every configuration in one run:

``starvation``: run the assigner as the loss runs it (the loss called on the model's predictions, its assigner
swapped per configuration) on ``--tiles`` training tiles, without augmentation, with one model: ``--weights``,
or a plain model trained here for ``--warm-epochs`` on ``--warm-fraction`` of the training set. Prints, per class,
the share of boxes with no positive anchor, the share with a ~0 best target (< 1e-3), the share whose best target is
under 0.1, and the mean class target of positive anchors (what a floor changes on ordinary classes).

``train``: train ``yolov8n.yaml`` per configuration with the same seed through stagerun's trainer, then validate
best.pt on ``val`` and ``test``; prints per-class mAP50 and mAP50-95, the run's wall time and the starvation report
the trainer recorded. The issue's protocol is the default (imgsz 320, batch 16, 20 epochs, seed 0) and wants a GPU:

    .venv/bin/python bench/thin_assigner.py starvation --device cpu --tiles 96
    .venv/bin/python bench/thin_assigner.py train --device 0               # the full protocol, on a GPU

The dataset is never copied: a temporary data.yaml points at it with an absolute path.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.stage_kinds.training_options import ThinAssigner, TrainingOptions  # noqa: E402

WEAK_TARGET = 0.1  # a best class target below this still trains a score near 0 (the floor's default)
PLAIN = TrainingOptions(thin_boxes=None, starvation_batches=0)  # Ultralytics as it is
CONFIGS: dict[str, ThinAssigner | None] = {  # each with stagerun's default thin-box keeping through augmentation
    "plain": None,
    "iou": ThinAssigner(iou="iou", target_floor=0.0),
    "iou+floor_all": ThinAssigner(iou="iou", target_floor=0.1, floor_on="all"),
    "iou+floor_starved": ThinAssigner(iou="iou", target_floor=0.1, floor_on="starved"),
    "ciou+floor_starved": ThinAssigner(iou="ciou", target_floor=0.1, floor_on="starved"),
}


def absolute_data_yaml(dataset: Path, workdir: Path) -> Path:
    data = yaml.safe_load((dataset / "data.yaml").read_text())
    data["path"] = str(dataset.resolve())
    out = workdir / "data.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def train(model: str, data_yaml: Path, options: TrainingOptions, args, project: Path, name: str, val: bool = True):
    from ultralytics import YOLO

    from worker.ultralytics_ext.trainer import StagerunTrainer

    recorded: dict = {}

    class BenchReporter:
        def record(self, topic: str, value: object) -> None:
            recorded[topic] = value

    yolo = YOLO(model)
    started = time.perf_counter()
    yolo.train(
        trainer=StagerunTrainer.for_stage(options, BenchReporter()),
        data=str(data_yaml),
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        seed=args.seed,
        deterministic=True,
        device=args.device,
        fraction=args.fraction,
        workers=args.workers,
        project=str(project),
        name=name,
        exist_ok=True,
        plots=False,
        verbose=False,
        val=val,
    )
    return Path(yolo.trainer.best), time.perf_counter() - started, recorded


# ----------------------------------------------------------------------------------------------- starvation


def starvation(args, workdir: Path, data_yaml: Path) -> dict:
    import torch
    from ultralytics import YOLO
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.utils.loss import v8DetectionLoss

    from worker.ultralytics_ext.assigner import ThinAwareAssigner
    from worker.ultralytics_ext.starvation import box_assignment, class_counts, starvation_table

    weights = args.weights
    if weights is None:
        warm = argparse.Namespace(**{**vars(args), "epochs": args.warm_epochs, "fraction": args.warm_fraction})
        weights, seconds, _ = train(args.model, data_yaml, PLAIN, warm, workdir, "warm", val=False)
        print(f"warm-up: plain {args.model}, {args.warm_epochs} epoch(s) on {args.warm_fraction:.0%} of train, "
              f"{seconds:.0f}s on {args.device}")
    model = YOLO(str(weights)).model.float().eval()
    cfg = get_cfg(overrides={"imgsz": args.imgsz, "batch": args.batch})
    model.args = cfg
    data = check_det_dataset(str(data_yaml))
    names = data["names"]
    dataset = build_yolo_dataset(cfg, data["train"], args.batch, data, mode="val", stride=32)
    loader = build_dataloader(dataset, args.batch, workers=0, shuffle=False)
    criterion = v8DetectionLoss(model)
    plain = criterion.assigner
    nc = len(names)
    totals = {name: torch.zeros(nc, 3, dtype=torch.long) for name in CONFIGS}
    positive = {name: torch.zeros(nc, 2) for name in CONFIGS}  # per class: positive anchors, sum of class targets
    weak = {name: torch.zeros(nc) for name in CONFIGS}  # per class: boxes whose best target is below WEAK_TARGET
    seen = 0
    for batch in loader:
        if seen >= args.tiles:
            break
        batch["img"] = batch["img"].float() / 255
        with torch.no_grad():
            preds = model(batch["img"])
        for name, options in CONFIGS.items():
            criterion.assigner = plain if options is None else ThinAwareAssigner.like(plain, options)
            captured: list = []
            handle = criterion.assigner.register_forward_hook(lambda _m, a, o, into=captured: into.append((a, o)))
            criterion(preds, batch)
            handle.remove()
            (_, _, _, gt_labels, gt_bboxes, mask_gt), (target_labels, _, target_scores, fg_mask, target_gt_idx) = captured[0]
            anchors, best = box_assignment(fg_mask, target_gt_idx, target_scores, gt_bboxes.shape[1])
            totals[name] += class_counts(gt_labels, mask_gt, anchors, best, nc)
            valid = mask_gt.squeeze(-1).bool()
            weak[name].index_add_(0, gt_labels.squeeze(-1)[valid].long(), (best[valid] < WEAK_TARGET).float())
            labels = target_labels[fg_mask].long()
            positive[name][:, 0].index_add_(0, labels, torch.ones_like(labels, dtype=torch.float))
            positive[name][:, 1].index_add_(0, labels, target_scores[fg_mask].amax(-1).float())
        seen += len(batch["im_file"])
    report = {}
    for name in CONFIGS:
        table = starvation_table(totals[name], names)
        for class_id, class_name in names.items():
            if class_name in table:
                count, target_sum = positive[name][class_id].tolist()
                table[class_name]["mean_positive_target"] = round(target_sum / count, 4) if count else 0.0
                table[class_name]["weak"] = round(weak[name][class_id].item() / table[class_name]["boxes"], 4)
        report[name] = table
    print(f"\nstarvation on {seen} training tiles (no augmentation), weights {weights}")
    header = f"{'class':<16}{'boxes':>6}" + "".join(f"{name:>28}" for name in CONFIGS)
    print(header + "\n" + " " * 22 + "".join(f"{'unanch/starv/weak/meanT':>28}" for _ in CONFIGS))
    for class_name in report["plain"]:
        row = f"{class_name[:15]:<16}{report['plain'][class_name]['boxes']:>6}"
        for name in CONFIGS:
            cell = report[name][class_name]
            row += f"{cell['unanchored']:>8.2f}{cell['starved']:>6.2f}{cell['weak']:>6.2f}{cell['mean_positive_target']:>8.3f}"
        print(row)
    return {"tiles": seen, "weights": str(weights), "device": args.device, "configs": report}


# ----------------------------------------------------------------------------------------------- training


def per_class_maps(weights: Path, data_yaml: Path, split: str, args) -> dict:
    from ultralytics import YOLO

    metrics = YOLO(str(weights)).val(
        data=str(data_yaml), split=split, imgsz=args.imgsz, batch=args.batch, device=args.device,
        plots=False, verbose=False, project=str(weights.parent.parent / "val"), name=split, exist_ok=True,
    )
    names = metrics.names
    out = {"all": {"mAP50": round(float(metrics.box.map50), 4), "mAP50-95": round(float(metrics.box.map), 4)}}
    for i, class_id in enumerate(metrics.box.ap_class_index):
        out[names[int(class_id)]] = {
            "mAP50": round(float(metrics.box.ap50[i]), 4), "mAP50-95": round(float(metrics.box.ap[i]), 4)
        }
    return out


def train_all(args, workdir: Path, data_yaml: Path) -> dict:
    results = {}
    for name in args.configs:
        options = PLAIN.model_copy(update={"starvation_batches": args.starvation_batches})
        if name != "plain":  # thin_boxes_only: stagerun's thin-box keeping with Ultralytics' assigner
            options = TrainingOptions(thin_assigner=CONFIGS.get(name), starvation_batches=args.starvation_batches)
        best, seconds, recorded = train(args.model, data_yaml, options, args, workdir, name.replace("+", "_"))
        results[name] = {
            "seconds": round(seconds, 1),
            "val": per_class_maps(best, data_yaml, "val", args),
            "test": per_class_maps(best, data_yaml, "test", args),
            "starvation": recorded.get("starvation"),
        }
        print(f"{name}: {seconds:.0f}s on {args.device}", flush=True)
    for split in ("val", "test"):
        print(f"\nmAP50 / mAP50-95 on {split}, after {args.epochs} epoch(s), fraction {args.fraction}")
        classes = list(results[args.configs[0]][split])
        print(f"{'class':<16}" + "".join(f"{name:>22}" for name in args.configs))
        for class_name in classes:
            cells = [results[name][split].get(class_name, {"mAP50": 0.0, "mAP50-95": 0.0}) for name in args.configs]
            print(f"{class_name[:15]:<16}" + "".join(f"{c['mAP50']:>12.3f}{c['mAP50-95']:>10.3f}" for c in cells))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["starvation", "train"])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/omr-bench"))
    parser.add_argument("--model", default="yolov8n.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=[*CONFIGS, "thin_boxes_only"],
                        help="train: 'thin_boxes_only' is plain plus stagerun's thin-box keeping")
    parser.add_argument("--starvation-batches", type=int, default=6)
    parser.add_argument("--tiles", type=int, default=96, help="starvation: training tiles measured")
    parser.add_argument("--weights", type=Path, help="starvation: the model to measure with (else a warm-up run)")
    parser.add_argument("--warm-epochs", type=int, default=3)
    parser.add_argument("--warm-fraction", type=float, default=0.25)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="stagerun-bench-thin-"))
    data_yaml = absolute_data_yaml(args.data, workdir)
    started = time.perf_counter()
    result = starvation(args, workdir, data_yaml) if args.what == "starvation" else train_all(args, workdir, data_yaml)
    print(f"\ntotal {time.perf_counter() - started:.0f}s on device {args.device}; runs under {workdir}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "result": result}, indent=1))


if __name__ == "__main__":
    main()
