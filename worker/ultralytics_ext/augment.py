"""Rare-class copy-paste for box-only datasets (Ultralytics' own ``copy_paste`` needs segment masks).

Runs on the augmented image (after mosaic and the affine step, in output pixels): with probability ``p``
it pastes 1 to ``max_pastes`` crops of objects of the chosen classes, cut from their own training images
at the size the dataset loads them, where a crop covers at most ``max_overlap`` of any box already there
(intersection over that box's area). The crop's rectangle becomes the new label."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
from ultralytics.data.augment import BaseTransform
from ultralytics.utils.instance import Instances

from worker.ultralytics_ext.thin_boxes import BoxTally


def covered_share(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """For each of ``boxes`` (N, 4) x1y1x2y2, the share of its area that ``box`` (4,) covers (IoA)."""
    if not len(boxes):
        return np.zeros(0)
    width = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    height = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return width * height / np.maximum(area, 1e-9)


def free_spot(
    size: tuple[int, int],
    image_size: tuple[int, int],
    occupied: np.ndarray,
    max_overlap: float,
    rng: random.Random,
    attempts: int = 20,
) -> tuple[int, int] | None:
    """A top-left corner (x, y) where a (w, h) crop fits inside a (W, H) image covering no occupied box
    beyond ``max_overlap``; None when ``attempts`` random tries find none."""
    (w, h), (image_w, image_h) = size, image_size
    if w > image_w or h > image_h:
        return None
    for _ in range(attempts):
        x, y = rng.randint(0, image_w - w), rng.randint(0, image_h - h)
        if (covered_share(np.array([x, y, x + w, y + h], dtype=np.float64), occupied) <= max_overlap).all():
            return x, y
    return None


def objects_of(label_classes: list[np.ndarray], class_ids: list[int]) -> dict[int, list[tuple[int, int]]]:
    """(image index, box index) of every object of each wanted class."""
    bank: dict[int, list[tuple[int, int]]] = {class_id: [] for class_id in class_ids}
    for image, classes in enumerate(label_classes):
        for box, class_id in enumerate(np.asarray(classes).reshape(-1).astype(int)):
            if class_id in bank:
                bank[class_id].append((image, box))
    return bank


class RareCopyPaste(BaseTransform):
    """See the module's docstring. ``dataset`` is the training ``YOLODataset`` the crops come from.
    Crops are kept once cut (up to ``MAX_KEPT_CROPS``): reading a whole image for each paste would cost
    more than the rest of the augmentation."""

    MAX_KEPT_CROPS = 2048

    def __init__(
        self, dataset: Any, class_ids: list[int], p: float, max_pastes: int, max_overlap: float, tally: BoxTally
    ):
        super().__init__()
        self.dataset = dataset
        self.p = p
        self.max_pastes = max_pastes
        self.max_overlap = max_overlap
        self.tally = tally
        bank = objects_of([label["cls"] for label in dataset.labels], class_ids)
        self.objects = {class_id: found for class_id, found in bank.items() if found}
        self.kept_crops: dict[tuple[int, int], np.ndarray] = {}

    def crop(self, image_index: int, box_index: int) -> np.ndarray:
        key = (image_index, box_index)
        if key not in self.kept_crops:
            if len(self.kept_crops) >= self.MAX_KEPT_CROPS:
                self.kept_crops.pop(next(iter(self.kept_crops)))
            self.kept_crops[key] = self.cut(image_index, box_index)
        return self.kept_crops[key]

    def cut(self, image_index: int, box_index: int) -> np.ndarray:
        """The object's pixels in its own image, as the dataset loads that image (long side = imgsz)."""
        image = self.dataset.load_image(image_index)[0]
        height, width = image.shape[:2]
        x, y, w, h = self.dataset.labels[image_index]["bboxes"][box_index]  # normalized centre x, y, w, h
        x1, y1 = max(0, math.floor((x - w / 2) * width)), max(0, math.floor((y - h / 2) * height))
        x2, y2 = min(width, math.ceil((x + w / 2) * width)), min(height, math.ceil((y + h / 2) * height))
        return image[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)].copy()

    def __call__(self, labels: dict[str, Any]) -> dict[str, Any]:
        instances: Instances = labels["instances"]
        if not self.objects or len(instances.segments) or instances.keypoints is not None:
            return labels  # box-only datasets: a pasted object would have no mask or keypoints
        if random.random() >= self.p:
            return labels
        image = labels["img"]
        height, width = image.shape[:2]
        instances.convert_bbox(format="xyxy")
        if instances.normalized:
            instances.denormalize(width, height)
        occupied = np.asarray(instances.bboxes, dtype=np.float64).reshape(-1, 4)
        pasted_boxes, pasted_classes = [], []
        for _ in range(random.randint(1, self.max_pastes)):
            class_id = random.choice(list(self.objects))
            crop = self.crop(*random.choice(self.objects[class_id]))
            spot = free_spot(crop.shape[1::-1], (width, height), occupied, self.max_overlap, random)
            if spot is None:
                continue
            x, y = spot
            image[y : y + crop.shape[0], x : x + crop.shape[1]] = crop.reshape(crop.shape[0], crop.shape[1], -1)
            box = [x, y, x + crop.shape[1], y + crop.shape[0]]
            occupied = np.vstack([occupied, box])
            pasted_boxes.append(box)
            pasted_classes.append(class_id)
        if pasted_boxes:
            labels["instances"] = Instances(occupied.astype(np.float32), bbox_format="xyxy", normalized=False)
            new_cls = np.array(pasted_classes, dtype=labels["cls"].dtype).reshape(-1, 1)
            labels["cls"] = np.concatenate([labels["cls"].reshape(-1, 1), new_cls])
            self.tally.pasted.update(pasted_classes)
        return labels
