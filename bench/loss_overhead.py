"""Loss-option overhead: seconds per training epoch with stagerun's loss options on (automatic class weights,
focal gamma 2 / alpha 0.25, small-object gain) vs plain Ultralytics, same data and seed, alternated in one
process. Prints the per-epoch ratio (target <= 1.05), and the ratio of one loss call on the same batch.

Only the loss is measured here; weighted sampling and copy-paste (the data side of issue 4) are not.

    .venv/bin/python bench/loss_overhead.py [--repeats 3] [--images 48] [--imgsz 160] [--epochs 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

from common import dataset, new_home

LOSS_OPTIONS = {
    "class_weights": "sqrt_inverse",
    "focal": {"gamma": 2.0, "alpha": 0.25},
    "small_object_gain": {"gain": 2.0, "threshold": 0.01},
    "thin_boxes": None,
}


def train_epoch_seconds(
    trainer: type, data_yaml: Path, out: Path, name: str, args: argparse.Namespace
) -> list[tuple[float, float]]:
    """(wall, process CPU) seconds of each training epoch (the batches only, validation excluded). CPU time
    is the steadier figure on a machine shared with other work."""
    from ultralytics import YOLO

    starts: list[tuple[float, float]] = []
    seconds: list[tuple[float, float]] = []

    def start(_) -> None:
        starts.append((time.perf_counter(), time.process_time()))

    def end(_) -> None:
        seconds.append((time.perf_counter() - starts[-1][0], time.process_time() - starts[-1][1]))

    yolo = YOLO("yolov8n.yaml")
    yolo.add_callback("on_train_epoch_start", start)
    yolo.add_callback("on_train_epoch_end", end)
    yolo.train(
        trainer=trainer,
        data=str(data_yaml),
        project=str(out),
        name=name,
        exist_ok=True,
        device=args.device,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        workers=0,
        seed=0,
        plots=False,
        verbose=False,
    )
    return seconds


def loss_call_seconds(args: argparse.Namespace, calls: int = 200) -> tuple[float, float]:
    """Median seconds of one loss call and its backward (to the predictions), plain vs ours, on the same batch."""
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.loss import v8DetectionLoss

    from worker.ultralytics_ext.loss import LossSettings, StagerunDetectionLoss

    device = torch.device("cuda" if args.device not in ("cpu", "mps") and torch.cuda.is_available() else "cpu")
    model = DetectionModel("yolov8n.yaml", nc=3, verbose=False).to(device).train()
    model.args = get_cfg()
    generator = torch.Generator().manual_seed(0)
    n = args.batch * 4
    batch = {
        "batch_idx": torch.arange(args.batch).repeat_interleave(4).float().to(device),
        "cls": torch.randint(0, 3, (n, 1), generator=generator).float().to(device),
        "bboxes": (torch.rand(n, 4, generator=generator) * 0.4 + torch.tensor([0.3, 0.3, 0.01, 0.05])).to(device),
    }
    with torch.no_grad():
        raw = model(torch.rand(args.batch, 3, args.imgsz, args.imgsz, generator=generator).to(device))
    preds = {"boxes": raw["boxes"].requires_grad_(), "scores": raw["scores"].requires_grad_(), "feats": raw["feats"]}
    settings = LossSettings(class_weights=[1.0, 2.0, 4.0], gamma=2.0, alpha=0.25, small_gain=2.0, small_threshold=0.01)
    criteria = {"plain": v8DetectionLoss(model), "ours": StagerunDetectionLoss(model, settings)}
    times: dict[str, list[float]] = {name: [] for name in criteria}
    for i in range(calls + 3):
        for name, criterion in criteria.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            loss, _ = criterion(copy.copy(preds), batch)
            loss.sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 3:
                times[name].append(time.perf_counter() - start)
            preds["boxes"].grad = preds["scores"].grad = None
    return statistics.median(times["plain"]), statistics.median(times["ours"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from ultralytics.models.yolo.detect import DetectionTrainer

    from shared.stage_kinds.training_options import TrainingOptions
    from worker.ultralytics_ext.trainer import StagerunTrainer

    home = new_home("loss")
    data_yaml = dataset(home, train=args.images, val=max(args.images // 8, 2), size=args.imgsz, seed=0)
    variants = {
        "plain": DetectionTrainer,
        "loss options": StagerunTrainer.for_stage(TrainingOptions(**LOSS_OPTIONS), None),
    }
    epochs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for repeat in range(args.repeats):
        order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
        for name in order:
            seconds = train_epoch_seconds(variants[name], data_yaml, home / "runs", f"{name}-{repeat}", args)
            epochs[name].extend(seconds)
            shown = " ".join(f"{wall:.2f}s/{cpu:.2f}s" for wall, cpu in seconds)
            print(f"repeat {repeat + 1}: {name:12s} epochs (wall/cpu) {shown}", flush=True)
    for measure, index in (("wall", 0), ("cpu", 1)):
        plain, ours = (statistics.median(s[index] for s in epochs[name]) for name in variants)
        print(f"{measure:4s} per epoch: plain {plain:.3f}s  loss options {ours:.3f}s  ratio {ours / plain:.3f}")
    plain_call, our_call = loss_call_seconds(args)
    print(
        f"one loss call + backward (batch {args.batch}, {args.imgsz} px): plain {plain_call * 1e3:.2f} ms, "
        f"ours {our_call * 1e3:.2f} ms, ratio {our_call / plain_call:.3f}"
    )


if __name__ == "__main__":
    main()
