"""Weighted image sampling inside Ultralytics' endless training loader.

Ultralytics' ``InfiniteDataLoader`` keeps one iterator (and its worker processes) across epochs and wraps
its batch sampler in a ``_RepeatSampler`` that restarts the inner sampler whenever a pass ends. Worker
prefetching means the pass for epoch e+1 may start before the trainer enters epoch e+1, and ``reset()``
(on ``close_mosaic``) throws the iterator away mid-stream. So each pass is numbered by the stream itself:
the first pass of a fresh iterator is the epoch the trainer last announced with ``set_epoch``, each later
pass the next one. The drawn indices depend only on (seed, epoch), whoever asks and whenever."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import BatchSampler, Sampler
from ultralytics.data.build import InfiniteDataLoader, _RepeatSampler

from shared.class_weights import class_weights
from shared.stage_kinds.training_options import Sampling
from worker.ultralytics_ext.sampling_weights import (
    classes_per_image,
    draw_share,
    expected_instances,
    image_weights,
    instance_counts,
    ramped_weights,
)


class WeightedEpochSampler(Sampler[int]):
    """``len(weights)`` image indices per epoch, drawn with replacement in proportion to each image's weight
    for that epoch (ramped from uniform over ``ramp_epochs``)."""

    def __init__(self, weights: Sequence[float], seed: int = 0, ramp_epochs: int = 0):
        self.weights = np.asarray(weights, dtype=np.float64)
        if self.weights.ndim != 1 or not len(self.weights) or (self.weights <= 0).any():
            raise ValueError("image weights must be a non-empty list of positive numbers")
        self.seed = int(seed)
        self.ramp_epochs = int(ramp_epochs)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.weights)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def weights_for(self, epoch: int) -> np.ndarray:
        return ramped_weights(self.weights, epoch, self.ramp_epochs)

    def draw(self, epoch: int) -> np.ndarray:
        weights = self.weights_for(epoch)
        rng = np.random.default_rng([self.seed, epoch])
        return rng.choice(len(weights), size=len(weights), replace=True, p=weights / weights.sum())

    def __iter__(self) -> Iterator[int]:
        return iter(self.draw(self.epoch).tolist())


class EpochRepeatSampler(_RepeatSampler):
    """Ultralytics' endless batch sampler, with each pass drawn for the epoch it will be consumed in."""

    def __iter__(self) -> Iterator:
        weighted: WeightedEpochSampler = self.sampler.sampler
        for epoch in itertools.count(weighted.epoch):
            weighted.set_epoch(epoch)
            yield from iter(self.sampler)


def install_weighted_sampler(loader: InfiniteDataLoader, sampler: WeightedEpochSampler) -> None:
    """Put ``sampler`` where the loader's shuffling sampler was, before the loader's first iteration.

    ``build_dataloader`` offers no sampler argument; replacing the sampler of its ``BatchSampler`` keeps
    everything else it chose (workers, seeding, pinning, collation) as Ultralytics set it."""
    if loader.iterator is not None:
        raise RuntimeError("the weighted sampler must be installed before the loader is first iterated")
    batches = loader.batch_sampler.sampler
    if not isinstance(loader.batch_sampler, _RepeatSampler) or not isinstance(batches, BatchSampler):
        raise TypeError(f"unexpected Ultralytics loader layout: {type(loader.batch_sampler).__name__}")
    batches.sampler = sampler
    object.__setattr__(loader, "batch_sampler", EpochRepeatSampler(batches))  # as InfiniteDataLoader does itself
    object.__setattr__(loader, "sampler", sampler)


def _by_name(names: Sequence[str], values: Sequence[float], digits: int = 4) -> dict[str, float]:
    return {name: round(float(value), digits) for name, value in zip(names, values, strict=True)}


def weighted_sampler(
    label_classes: Sequence[np.ndarray], names: Sequence[str], spec: Sampling, seed: int
) -> tuple[WeightedEpochSampler, dict]:
    """The sampler for a training set (each image's ``cls`` column) and what to record about it: class
    weights, each class's share of draws (images containing it) and instances per epoch, with and without."""
    counts = instance_counts(label_classes, len(names))
    weights = class_weights(spec.weights, names, counts.tolist(), field="sampling.weights")
    present = classes_per_image(label_classes)
    per_image = image_weights(present, weights)
    uniform = np.ones(len(per_image))
    report = {
        "class_weights": _by_name(names, weights),
        "ramp_epochs": spec.ramp_epochs,
        "background_image_weight": round(float(min(weights)), 4),
        "draw_share": _by_name(names, draw_share(present, per_image, len(names))),
        "draw_share_uniform": _by_name(names, draw_share(present, uniform, len(names))),
        "instances_per_epoch": _by_name(names, expected_instances(label_classes, per_image, len(names)), 1),
        "instances_per_epoch_uniform": _by_name(names, counts, 1),
    }
    return WeightedEpochSampler(per_image, seed=seed, ramp_epochs=spec.ramp_epochs), report
