"""Weighted sampling on omr-bench.

1. Instances of each class an epoch shows, plain (every image once) against weighted sampling, counted
   from the indices the sampler really draws over several epochs and the training labels (no training).
2. Seconds per training epoch with stagerun's data options on (weighted sampling, rare-class copy-paste,
   thin-box-safe augmentation) against plain Ultralytics, alternated in one run on a small subset, CPU.

    .venv/bin/python bench/sampling_omr.py [--epochs 10] [--train-fraction 0.05] [--repeats 3] [--skip-timing]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time

import numpy as np
from omr import THIN_CLASSES, omr_data_yaml
from ultralytics import YOLO
from ultralytics.cfg import get_cfg
from ultralytics.data.build import build_yolo_dataset
from ultralytics.data.utils import check_det_dataset
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import LOGGER

from shared.class_weights import class_index
from shared.stage_kinds.training_options import Sampling, TrainingOptions
from worker.ultralytics_ext.dataset import DataOptions, training_dataset
from worker.ultralytics_ext.sampling import weighted_sampler
from worker.ultralytics_ext.trainer import StagerunTrainer

DATA_OPTIONS = {
    "sampling": {"weights": "sqrt_inverse"},
    "copy_paste_rare": {"classes": ["barline_double", "barline_repeat"], "p": 0.5},
    "thin_boxes": {"min_box_px": 1.0},
}


def training_labels(data_yaml: str) -> tuple[list[str], list[np.ndarray]]:
    data = check_det_dataset(data_yaml)
    labels_dir = data["path"] / "labels" / "train"
    images = sorted((data["path"] / "images" / "train").glob("*.png"))
    label_classes = []
    for image in images:
        text = (labels_dir / f"{image.stem}.txt").read_text().split("\n")
        label_classes.append(np.array([int(line.split()[0]) for line in text if line.strip()], dtype=np.int64))
    return [data["names"][i] for i in range(data["nc"])], label_classes


def instances_per_epoch(names: list[str], label_classes: list[np.ndarray], spec: str, epochs: int) -> None:
    nc = len(names)
    per_image = np.stack([np.bincount(c, minlength=nc) for c in label_classes])
    sampler, report = weighted_sampler(label_classes, names, Sampling(weights=spec), seed=0)
    drawn = np.mean([per_image[sampler.draw(epoch)].sum(0) for epoch in range(epochs)], axis=0)
    plain = per_image.sum(0)
    print(
        f"\nweights {spec!r}: instances per epoch, mean of {epochs} epochs of drawn indices ({len(label_classes)} images)"
    )
    print(f"{'class':16s} {'weight':>8s} {'plain':>8s} {'weighted':>9s} {'ratio':>6s} {'expected':>9s}")
    order = [*THIN_CLASSES, *(n for n in names if n not in THIN_CLASSES)]
    for name in order:
        c = names.index(name)
        ratio = drawn[c] / plain[c] if plain[c] else float("nan")
        print(
            f"{name:16s} {report['class_weights'][name]:8.3f} {plain[c]:8d} {drawn[c]:9.1f} {ratio:6.2f} "
            f"{report['instances_per_epoch'][name]:9.1f}"
        )


def pipeline_timing(data_yaml: str, options: dict, imgsz: int, rounds: int = 24) -> None:
    """The augmentation pipeline alone (dataset items per second), plain against stagerun's dataset."""
    data = check_det_dataset(data_yaml)
    spec = TrainingOptions(**options)
    names = [data["names"][i] for i in range(data["nc"])]
    paste = spec.copy_paste_rare
    ids = tuple(class_index(key, names, "copy_paste_rare") for key in paste.classes) if paste else ()
    data_options = DataOptions(thin_boxes=spec.thin_boxes, copy_paste=paste, copy_paste_class_ids=ids)
    cfg = {"imgsz": imgsz}
    datasets = {
        "plain": build_yolo_dataset(get_cfg(overrides=cfg), data["train"], 16, data, mode="train"),
        "ours": training_dataset(get_cfg(overrides=cfg), data["train"], 16, data, 32, data_options),
    }
    seconds = dict.fromkeys(datasets, 0.0)
    rng = np.random.default_rng(0)
    for chunk in range(rounds):  # small interleaved chunks: both see the same machine load
        indices = rng.integers(0, len(datasets["plain"]), size=32).tolist()
        for name, dataset in datasets.items() if chunk % 2 == 0 else reversed(datasets.items()):
            random.seed(chunk)
            np.random.seed(chunk)
            start = time.process_time()  # CPU time: other processes on the machine slow the wall clock
            for index in indices:
                dataset[index]
            seconds[name] += time.process_time() - start
    samples = 32 * rounds
    plain, ours = seconds["plain"], seconds["ours"]
    print(f"\naugmentation pipeline alone, {samples} samples at imgsz {imgsz}, CPU seconds, interleaved")
    print(
        f"plain {samples / plain:.1f} samples/s, stagerun {samples / ours:.1f} samples/s, time ratio {ours / plain:.3f}"
    )


def epoch_seconds(trainer, data_yaml: str, out: str, name: str, args: dict) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each training epoch, validation excluded. CPU time (all threads of this
    process) is what the work costs; wall time also counts waiting for cores other processes hold."""
    times: list[tuple[float, float]] = []
    started: list[tuple[float, float]] = []
    yolo = YOLO("yolov8n.yaml")
    yolo.add_callback("on_train_epoch_start", lambda t: started.append((time.perf_counter(), time.process_time())))
    yolo.add_callback(
        "on_train_epoch_end",
        lambda t: times.append((time.perf_counter() - started[-1][0], time.process_time() - started[-1][1])),
    )
    yolo.train(trainer=trainer, data=data_yaml, project=out, name=name, exist_ok=True, **args)
    return times


def timing(data_yaml: str, options: dict, fraction: float, repeats: int, epochs: int, imgsz: int) -> None:
    args = {
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": 16,
        "workers": 0,
        "device": "cpu",
        "seed": 0,
        "fraction": fraction,
        "val": False,
        "plots": False,
        "verbose": False,
        "amp": False,
    }
    ours = StagerunTrainer.for_stage(TrainingOptions(**options), None)
    out = tempfile.mkdtemp(prefix="sampling-omr-")
    measured: dict[str, list[tuple[float, float]]] = {"plain": [], "ours": []}
    for repeat in range(repeats):  # alternate, so that load from other processes hits both alike
        runs = [("plain", DetectionTrainer), ("ours", ours)]
        for name, trainer in runs if repeat % 2 == 0 else runs[::-1]:
            measured[name].extend(epoch_seconds(trainer, data_yaml, out, f"{name}{repeat}", args))
    print(f"\nseconds per epoch, {repeats} runs x {epochs} epochs each, fraction {fraction}, imgsz {imgsz}, CPU")
    print(f"options: {json.dumps(options)}")
    medians = {}
    for kind, column in (("wall", 0), ("cpu", 1)):
        for name, label in (("plain", "plain Ultralytics"), ("ours", "stagerun options ")):
            values = [t[column] for t in measured[name]]
            medians[name, kind] = statistics.median(values)
            print(f"{label} {kind:4s} median {medians[name, kind]:6.2f} s  all {[round(v, 2) for v in values]}")
        print(f"ratio stagerun / plain, {kind} seconds: {medians['ours', kind] / medians['plain', kind]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10, help="epochs of drawn indices to average")
    parser.add_argument("--train-fraction", type=float, default=0.05, help="share of train images for timing")
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--options", type=json.loads, default=DATA_OPTIONS, help="stagerun options, JSON")
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    data_yaml = str(omr_data_yaml(val_images=16))  # the final epoch's validation, kept short
    names, label_classes = training_labels(data_yaml)
    for spec in ("sqrt_inverse", "inverse"):
        instances_per_epoch(names, label_classes, spec, args.epochs)
    if not args.skip_timing:
        LOGGER.setLevel("WARNING")
        pipeline_timing(data_yaml, args.options, args.imgsz)
        timing(data_yaml, args.options, args.train_fraction, args.repeats, args.train_epochs, args.imgsz)


if __name__ == "__main__":
    main()
