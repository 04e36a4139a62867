"""What mining found, image by image: kinds and difficulties per object, then the per-class lists,
``stats.json`` and ``detailed.json`` a user reads."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from worker.mining import matching as k
from worker.mining.capture import ImagePredictions
from worker.mining.difficulty import image_difficulty, object_difficulties


@dataclass
class MinedImage:
    im_file: str
    shape: tuple[int, int]
    difficulty: float
    objects: list[dict]
    hard_classes: set[int] = field(default_factory=set)
    kinds: Counter = field(default_factory=Counter)

    @property
    def has_hard_negative(self) -> bool:
        return self.kinds[k.HARD_NEGATIVE] > 0


class MiningAccumulator:
    """Matches each image as it arrives and keeps what the outputs need (not the raw predictions)."""

    def __init__(self, names: list[str], thresholds: k.Thresholds, reduction: str, class_ids: list[int] | None):
        self.names, self.thresholds, self.reduction = names, thresholds, reduction
        self.classes = set(range(len(names))) if class_ids is None else set(class_ids)
        self.images: list[MinedImage] = []

    def _name(self, class_id: int) -> str:
        return self.names[class_id] if 0 <= class_id < len(self.names) else str(class_id)

    def add(self, image: ImagePredictions, iou: np.ndarray | None = None) -> MinedImage:
        t = self.thresholds
        match = k.match_image(image.gt_boxes, image.gt_cls, image.pred_boxes, image.pred_cls, image.pred_conf, t, iou)
        gt_difficulty, pred_difficulty = object_difficulties(match, image.pred_conf, t.low_conf)
        gt_in = np.array([c in self.classes for c in image.gt_cls], dtype=bool)
        pred_in = np.array([c in self.classes for c in image.pred_cls], dtype=bool)
        gt_difficulty, pred_difficulty = gt_difficulty * gt_in, pred_difficulty * pred_in
        name = self._name
        gt_cls, pred_cls = image.gt_cls.tolist(), image.pred_cls.tolist()
        conf = np.round(image.pred_conf, 4).tolist()
        gt_boxes, pred_boxes = np.round(image.gt_boxes, 2).tolist(), np.round(image.pred_boxes, 2).tolist()
        gt_iou, pred_iou = np.round(match.gt_iou, 4).tolist(), np.round(match.pred_iou, 4).tolist()
        gt_d, pred_d = np.round(gt_difficulty, 4).tolist(), np.round(pred_difficulty, 4).tolist()
        kinds = Counter(match.gt_kind[gt_in].tolist())
        hard_classes = {gt_cls[g] for g in np.flatnonzero(gt_difficulty > 0)}
        hard_classes.update(pred_cls[p] for p in np.flatnonzero(pred_difficulty > 0))
        objects = []
        for g, (other, kind) in enumerate(zip(match.gt_other.tolist(), match.gt_kind.tolist(), strict=True)):
            objects.append(
                {
                    "source": "ground_truth",
                    "box": gt_boxes[g],
                    "class": name(gt_cls[g]),
                    "predicted_class": name(pred_cls[other]) if other >= 0 else None,
                    "confidence": conf[other] if other >= 0 else None,
                    "iou": gt_iou[g],
                    "kind": kind,
                    "difficulty": gt_d[g],
                }
            )
        pred_other, pred_kind = match.pred_other.tolist(), match.pred_kind.tolist()
        for p in np.flatnonzero(match.pred_kind != k.UNUSED).tolist():
            other, kind = pred_other[p], pred_kind[p]
            if pred_in[p] and (kind not in _COUNTED_ON_GROUND_TRUTH or _extra_wrong_class(match, p)):
                kinds[kind] += 1
            record = {
                "source": "prediction",
                "box": pred_boxes[p],
                "class": name(gt_cls[other]) if other >= 0 else None,
                "predicted_class": name(pred_cls[p]),
                "confidence": conf[p],
                "iou": pred_iou[p],
                "kind": kind,
                "difficulty": pred_d[p],
            }
            if _extra_wrong_class(match, p):
                record["extra"] = True  # a wrong-class box on an object its own class found
            objects.append(record)
        difficulty = image_difficulty(np.concatenate([gt_difficulty, pred_difficulty]), self.reduction)
        mined = MinedImage(image.im_file, image.shape, round(difficulty, 4), objects, hard_classes, kinds)
        self.images.append(mined)
        return mined

    def hard_images(self, min_difficulty: float) -> list[MinedImage]:
        """Images at or above ``min_difficulty`` (and above zero), hardest first, ties by file name."""
        hard = [i for i in self.images if i.difficulty >= min_difficulty and i.difficulty > 0]
        return sorted(hard, key=lambda i: (-i.difficulty, i.im_file))

    def per_class_lists(self, min_difficulty: float) -> dict[int, list[MinedImage]]:
        lists: dict[int, list[MinedImage]] = {c: [] for c in sorted(self.classes)}
        for image in self.hard_images(min_difficulty):
            for c in image.hard_classes:
                if c in lists:
                    lists[c].append(image)
        return lists

    def stats(self, min_difficulty: float) -> dict:
        per_class = {c: Counter() for c in sorted(self.classes)}
        ground_truth = Counter()
        for image in self.images:
            for obj in image.objects:
                kind = obj["kind"]
                if obj["source"] == "ground_truth":
                    name = obj["class"]
                    ground_truth[name] += 1
                elif kind in _COUNTED_ON_GROUND_TRUTH and not obj.get("extra"):
                    continue
                else:
                    name = obj["predicted_class"]
                class_id = self.names.index(name) if name in self.names else -1
                if class_id in per_class:
                    per_class[class_id][kind] += 1
        lists = self.per_class_lists(min_difficulty)
        hard = self.hard_images(min_difficulty)
        overall = Counter()
        for counts in per_class.values():
            overall.update(counts)
        return {
            "images": len(self.images),
            "hard_images": len(hard),
            "hard_negative_images": sum(1 for i in self.images if i.has_hard_negative),
            "kinds": {kind: overall[kind] for kind in _ALL_KINDS},
            "per_class": [
                {
                    "class_id": c,
                    "name": self._name(c),
                    "ground_truth": ground_truth[self._name(c)],
                    **{kind: per_class[c][kind] for kind in _ALL_KINDS},
                    "hard_images": len(lists[c]),
                }
                for c in sorted(self.classes)
            ],
        }

    def detailed(self) -> list[dict]:
        ordered = sorted(self.images, key=lambda i: (-i.difficulty, i.im_file))
        return [
            {
                "image": i.im_file,
                "width": i.shape[1],
                "height": i.shape[0],
                "difficulty": i.difficulty,
                "objects": i.objects,
            }
            for i in ordered
        ]


def _extra_wrong_class(match: k.ImageMatch, p: int) -> bool:
    """A misclassifying prediction on an object already found by its own class: counted on its own."""
    return match.pred_kind[p] == k.MISCLASSIFICATION and match.gt_kind[match.pred_other[p]] != k.MISCLASSIFICATION


_COUNTED_ON_GROUND_TRUTH = (k.MATCHED, k.LOW_CONFIDENCE, k.MISCLASSIFICATION)
"""Prediction kinds counted once, on the ground truth they explain."""
_ALL_KINDS = tuple(dict.fromkeys((*k.GT_KINDS, *k.PRED_KINDS)))


def class_file_name(name: str) -> str:
    """``hard_examples_<class>.txt`` with the class name made safe for a file name."""
    return f"hard_examples_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('._') or 'class'}.txt"
