"""The evaluate stage: Ultralytics validation of the latest weights, with a per-class table and the
error breakdown (worker/mining/breakdown.py) from the same pass."""

from __future__ import annotations

import json

from shared.stage_kinds.evaluate import KIND as EVALUATE
from worker.stages.base import StageRunner
from worker.tta import side_by_side
from worker.ultralytics_ext.metrics import detection_summary


class EvaluateRunner(StageRunner):
    kind = EVALUATE

    def run(self) -> dict:
        from ultralytics import YOLO

        from worker.mining.breakdown import BreakdownAccumulator
        from worker.mining.capture import validator_with_sink
        from worker.mining.localization import LocalizationAccumulator
        from worker.ultralytics_ext.widening import model_pad, narrowing_px

        context, spec = self.context, self.context.spec
        weights = context.weights
        breakdown = BreakdownAccumulator(len(context.dataset.names), iou_thr=0.5, count_conf=spec.conf or 0.25)
        localization = LocalizationAccumulator(len(context.dataset.names))

        def sink(image) -> None:
            breakdown.add(image.gt_boxes, image.gt_cls, image.pred_boxes, image.pred_cls, image.pred_conf)
            localization.add(image.gt_boxes, image.gt_cls, image.pred_boxes, image.pred_cls, image.pred_conf)

        args = self.ultralytics_args()
        plain = None
        if spec.augment:  # the plain pass first, so the reported plots and tables are the augmented ones
            plain_metrics = YOLO(weights).val(
                validator=validator_with_sink(lambda _image: None), **{**args, "augment": False, "plots": False}
            )
            plain = detection_summary(plain_metrics, context.dataset.names)
        model = YOLO(weights)
        det_metrics = model.val(validator=validator_with_sink(sink), **args)
        pad = model_pad(model)
        errors = breakdown.result(context.dataset.names)
        summary = detection_summary(det_metrics, context.dataset.names)
        report = {
            "weights": context.shown(weights),
            "split": spec.split,
            **summary,
            "confusion_matrix": {
                "labels": [*context.dataset.names, "background"],
                "matrix": det_metrics.confusion_matrix.matrix.astype(int).tolist(),
                "rows": "predicted",
            },
            "speed_ms_per_image": {k: round(float(v), 3) for k, v in det_metrics.speed.items()},
            "error_breakdown": errors,
            "localization": localization.result(context.dataset.names),
            "narrowed_by": None if pad is None else narrowing_px(pad, int(spec.imgsz or 640)),
        }
        if plain is not None:
            report["tta"] = side_by_side(plain, summary)
        (context.stage_dir / "metrics.json").write_text(json.dumps(report, indent=2))
        context.reporter.progress(1, None)
        return {
            "evaluated_weights": context.shown(weights),
            "split": spec.split,
            "metrics": summary,
            "error_breakdown": {"mAP50": errors["mAP50"], "overall": errors["overall"]},
            "localization": report["localization"],
            "report": context.relative(context.stage_dir / "metrics.json"),
            **({"tta": report["tta"]} if plain is not None else {}),
        }
