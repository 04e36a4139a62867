"""Predictions and ground truth of every image, captured from Ultralytics' own validation pass.

Mining runs through the validator rather than a separate predictor so that it reads the split with
the same dataloader, letterboxing, batching, NMS and label files as ``model.val()`` and costs one
inference pass; this subclass only hands each image's boxes (in original-image pixels) to a sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.utils import ops


@dataclass
class ImagePredictions:
    im_file: str
    shape: tuple[int, int]
    gt_boxes: np.ndarray
    gt_cls: np.ndarray
    pred_boxes: np.ndarray
    pred_cls: np.ndarray
    pred_conf: np.ndarray


Sink = Callable[[ImagePredictions], None]


def _to_original(boxes, pbatch) -> np.ndarray:
    if boxes.shape[0] == 0:
        return np.zeros((0, 4), dtype=np.float64)
    scaled = ops.scale_boxes(pbatch["imgsz"], boxes.clone(), pbatch["ori_shape"], ratio_pad=pbatch["ratio_pad"])
    return scaled.cpu().numpy().astype(np.float64)


class CapturingValidator(DetectionValidator):
    """A ``DetectionValidator`` that also passes every image's boxes to ``self.sink``."""

    sink: Sink

    def update_metrics(self, preds, batch) -> None:
        super().update_metrics(preds, batch)
        for si, pred in enumerate(preds):
            pbatch = self._prepare_batch(si, batch)
            self.sink(
                ImagePredictions(
                    im_file=pbatch["im_file"],
                    shape=tuple(int(v) for v in pbatch["ori_shape"]),
                    gt_boxes=_to_original(pbatch["bboxes"], pbatch),
                    gt_cls=pbatch["cls"].cpu().numpy().astype(np.int64).reshape(-1),
                    pred_boxes=_to_original(pred["bboxes"], pbatch),
                    pred_cls=pred["cls"].cpu().numpy().astype(np.int64).reshape(-1),
                    pred_conf=pred["conf"].cpu().numpy().astype(np.float64).reshape(-1),
                )
            )


def validator_with_sink(sink: Sink) -> type[CapturingValidator]:
    """A validator class for ``YOLO.val(validator=...)`` (it instantiates the class itself)."""
    return type("SinkValidator", (CapturingValidator,), {"sink": staticmethod(sink)})
