"""Thin boxes through Ultralytics' affine augmentation.

``RandomPerspective.box_candidates`` drops every box 2 px or less wide or high after scaling, and every
aspect ratio over 100: on sheet music that is every stem and most barlines. ``ThinBoxPerspective`` keeps
any box still in the frame, widens boxes thinner than ``min_box_px`` to that size (inside the image) and
only drops aspect ratios over ``max_aspect_ratio``. ``CountingPerspective`` keeps Ultralytics' rule and
only counts, per class, the boxes it drops while they are still in the frame."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from ultralytics.data.augment import RandomPerspective


class BoxTally:
    """Per-class counts of what augmentation did to one sample, handed out and reset with ``take``."""

    def __init__(self) -> None:
        self.removed: Counter[int] = Counter()
        self.kept: Counter[int] = Counter()
        self.pasted: Counter[int] = Counter()

    def take(self) -> dict[str, dict[int, int]]:
        counts = {"removed": dict(self.removed), "kept": dict(self.kept), "pasted": dict(self.pasted)}
        self.removed.clear()
        self.kept.clear()
        self.pasted.clear()
        return counts


def in_frame(boxes: np.ndarray) -> np.ndarray:
    """Boxes (4, N) x1y1x2y2, already clipped to the image, that still cover some of it."""
    return (boxes[2] > boxes[0]) & (boxes[3] > boxes[1])


def thin_box_candidates(
    before: np.ndarray, after: np.ndarray, min_box_px: float, max_aspect_ratio: float, area_thr: float
) -> np.ndarray:
    """Which boxes to keep, given each box before (scaled like the image) and after the transform and clip,
    both (4, N) x1y1x2y2 in pixels: those still in the frame, with at least ``area_thr`` of their scaled
    area visible (Ultralytics' rule), and an aspect ratio, once widened to ``min_box_px``, under the limit."""
    w1, h1 = before[2] - before[0], before[3] - before[1]
    w2, h2 = after[2] - after[0], after[3] - after[1]
    visible = in_frame(after) & (w2 * h2 > area_thr * w1 * h1)
    wide, high = np.maximum(w2, min_box_px), np.maximum(h2, min_box_px)
    return visible & (np.maximum(wide / high, high / wide) < max_aspect_ratio)


def widen_boxes(boxes: np.ndarray, min_box_px: float, width: float, height: float) -> np.ndarray:
    """Boxes (N, 4) x1y1x2y2 in pixels, each side at least ``min_box_px`` (at most the image), kept inside
    the image: a thin box grows about its centre and is shifted back in at the border."""
    out = np.array(boxes, dtype=np.float32, copy=True)
    for low, high, limit in ((0, 2, width), (1, 3, height)):
        size = min(min_box_px, limit)
        thin = out[:, high] - out[:, low] < size
        centre = (out[thin, low] + out[thin, high]) / 2
        start = np.clip(centre - size / 2, 0.0, limit - size)
        out[thin, low], out[thin, high] = start, start + size
    return out


class CountingPerspective(RandomPerspective):
    """Ultralytics' ``RandomPerspective``, unchanged, counting per class the in-frame boxes it drops."""

    def __init__(self, *args: Any, tally: BoxTally | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.tally = tally if tally is not None else BoxTally()
        self._dropped_in_frame = np.zeros(0, dtype=bool)

    @classmethod
    def replacing(cls, plain: RandomPerspective, tally: BoxTally, **options: Any) -> CountingPerspective:
        """A copy of ``plain`` (every parameter it was built with) as this class."""
        copy = cls.__new__(cls)
        copy.__dict__.update(vars(plain))
        copy.__dict__.update(options)
        copy.tally = tally
        copy._dropped_in_frame = np.zeros(0, dtype=bool)
        return copy

    def keep(self, before: np.ndarray, after: np.ndarray, area_thr: float, eps: float) -> np.ndarray:
        return RandomPerspective.box_candidates(before, after, area_thr=area_thr, eps=eps)

    def box_candidates(self, box1, box2, wh_thr=2, ar_thr=100, area_thr=0.1, eps=1e-16):
        kept = self.keep(box1, box2, area_thr, eps)
        self._dropped_in_frame = in_frame(box2) & ~kept
        return kept

    def apply_instances(self, labels: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        classes = labels["cls"].reshape(-1).astype(int)
        labels = super().apply_instances(labels, params)
        self.tally.removed.update(classes[self._dropped_in_frame].tolist())
        self.tally.kept.update(labels["cls"].reshape(-1).astype(int).tolist())
        return labels


class ThinBoxPerspective(CountingPerspective):
    """Keeps thin boxes: see the module's docstring."""

    min_box_px: float = 1.0
    max_aspect_ratio: float = 1000.0

    def keep(self, before: np.ndarray, after: np.ndarray, area_thr: float, eps: float) -> np.ndarray:
        return thin_box_candidates(before, after, self.min_box_px, self.max_aspect_ratio, area_thr)

    def apply_instances(self, labels: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        labels = super().apply_instances(labels, params)
        instances = labels["instances"]  # x1y1x2y2 in pixels of the output image
        if len(instances):
            instances.update(widen_boxes(instances.bboxes, self.min_box_px, *params["size"]))
        return labels
