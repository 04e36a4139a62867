"""Weighted image sampling, the maths: an image weighs as much as the heaviest class in it, a ramp moves
from uniform to those weights, and the share of draws each class gets follows. Pure NumPy, no I/O."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def classes_per_image(label_classes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The distinct class ids in each image, from each image's ``cls`` column (any shape, float or int)."""
    return [np.unique(np.asarray(cls, dtype=np.int64).reshape(-1)) for cls in label_classes]


def instance_counts(label_classes: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Instances of each class over all images."""
    flat = [np.asarray(cls, dtype=np.int64).reshape(-1) for cls in label_classes]
    every = np.concatenate(flat) if flat else np.zeros(0, dtype=np.int64)
    return np.bincount(every, minlength=num_classes)[:num_classes]


def image_weights(image_classes: Sequence[np.ndarray], class_weights: Sequence[float]) -> np.ndarray:
    """The largest weight among the classes present in each image.

    An image without labels (a background image) weighs as little as the lightest class: nothing in it
    asks for more draws, and it keeps a chance of being drawn."""
    weights = np.asarray(class_weights, dtype=np.float64)
    background = float(weights.min()) if len(weights) else 1.0
    return np.array([weights[present].max() if len(present) else background for present in image_classes])


def ramp_fraction(epoch: int, ramp_epochs: int) -> float:
    """How far epoch ``epoch`` (0-based) is along the ramp: 0 at epoch 0, 1 from epoch ``ramp_epochs`` on."""
    if ramp_epochs <= 0:
        return 1.0
    return min(1.0, max(epoch, 0) / ramp_epochs)


def ramped_weights(weights: np.ndarray, epoch: int, ramp_epochs: int) -> np.ndarray:
    """(1 - t) * 1 + t * w with t = ``ramp_fraction``: uniform at the start, the full weights at the end.
    Because the ramp is increasing in w, ramping image weights equals taking the max of ramped class weights."""
    t = ramp_fraction(epoch, ramp_epochs)
    return (1.0 - t) + t * np.asarray(weights, dtype=np.float64)


def draw_share(image_classes: Sequence[np.ndarray], weights: np.ndarray, num_classes: int) -> np.ndarray:
    """For each class, the probability that one draw lands on an image containing it."""
    probabilities = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    share = np.zeros(num_classes)
    for present, probability in zip(image_classes, probabilities, strict=True):
        share[present] += probability
    return share


def expected_instances(label_classes: Sequence[np.ndarray], weights: np.ndarray, num_classes: int) -> np.ndarray:
    """Instances of each class an epoch of ``len(weights)`` draws with replacement is expected to show."""
    probabilities = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    expected = np.zeros(num_classes)
    for cls, probability in zip(label_classes, probabilities, strict=True):
        counts = np.bincount(np.asarray(cls, dtype=np.int64).reshape(-1), minlength=num_classes)[:num_classes]
        expected += probability * counts
    return expected * len(probabilities)
