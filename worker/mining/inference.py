"""The one inference pass of mining: Ultralytics validation with every image matched as it comes."""

from __future__ import annotations

from collections.abc import Callable

from worker.mining.breakdown import BreakdownAccumulator
from worker.mining.capture import ImagePredictions, validator_with_sink
from worker.mining.localization import LOCALIZATION_CONF, LocalizationAccumulator
from worker.mining.matching import Thresholds, box_iou
from worker.mining.report import MiningAccumulator

PREDICTION_FLOOR = 0.001
"""Confidence down to which predictions are kept (as ``model.val()`` does): AP needs them all."""


def mine_split(
    weights: str,
    val_args: dict,
    names: list[str],
    thresholds: Thresholds,
    reduction: str = "sum",
    class_ids: list[int] | None = None,
    before_image: Callable[[int], None] | None = None,
) -> tuple[MiningAccumulator, BreakdownAccumulator, LocalizationAccumulator]:
    """Run ``YOLO(weights).val(**val_args)`` once; returns what mining, the breakdown and the localization
    report collected.
    ``before_image(n_done)`` may raise to stop early (a cancelled stage)."""
    from ultralytics import YOLO

    miner = MiningAccumulator(names, thresholds, reduction, class_ids)
    breakdown = BreakdownAccumulator(len(names), iou_thr=thresholds.iou, count_conf=thresholds.conf)
    localization = LocalizationAccumulator(len(names), conf=LOCALIZATION_CONF)

    def sink(image: ImagePredictions) -> None:
        if before_image is not None:
            before_image(len(miner.images))
        iou = box_iou(image.pred_boxes, image.gt_boxes)  # computed once for both
        miner.add(image, iou)
        breakdown.add(image.gt_boxes, image.gt_cls, image.pred_boxes, image.pred_cls, image.pred_conf, iou)
        localization.add(image.gt_boxes, image.gt_cls, image.pred_boxes, image.pred_cls, image.pred_conf)

    args = {**val_args, "conf": PREDICTION_FLOOR, "plots": False, "save_json": False}
    YOLO(weights).val(validator=validator_with_sink(sink), **args)
    return miner, breakdown, localization
