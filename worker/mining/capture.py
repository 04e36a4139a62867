"""Predictions and ground truth of every image, captured from Ultralytics' own validation pass.

Mining runs through the validator rather than a separate predictor so that it reads the split with
the same dataloader, letterboxing, batching, NMS and label files as ``model.val()`` and costs one
inference pass; this subclass only hands each image's boxes (in original-image pixels) to a sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from worker.ultralytics_ext.widening import NarrowingValidator


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
    """Letterboxed xyxy boxes back to original-image pixels (what ``ops.scale_boxes`` does), in NumPy."""
    if boxes.shape[0] == 0:
        return np.zeros((0, 4), dtype=np.float64)
    (gain_y, gain_x), (pad_x, pad_y) = pbatch["ratio_pad"]
    height, width = pbatch["ori_shape"]
    out = (boxes.cpu().numpy().astype(np.float64) - (pad_x, pad_y, pad_x, pad_y)) / (gain_x, gain_y, gain_x, gain_y)
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    return out


class CapturingValidator(NarrowingValidator):
    """A ``DetectionValidator`` that also passes every image's boxes to ``self.sink`` (predictions narrowed by
    the weights' ``widen_thin`` pad, when they have one)."""

    sink: Sink

    def _prepare_batch(self, si, batch):
        prepared = super()._prepare_batch(si, batch)
        self._prepared[si] = prepared  # update_metrics prepares each image once; reuse it
        return prepared

    def update_metrics(self, preds, batch) -> None:
        self._prepared: dict[int, dict] = {}
        super().update_metrics(preds, batch)
        for si, pred in enumerate(preds):
            pbatch = self._prepared.get(si) or self._prepare_batch(si, batch)
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
