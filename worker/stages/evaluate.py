"""The evaluate stage: Ultralytics validation of the latest weights, with a per-class table."""

from __future__ import annotations

import json

from worker.stages.base import StageRunner
from worker.ultralytics_ext.metrics import detection_summary


class EvaluateRunner(StageRunner):
    type = "evaluate"

    def weights(self) -> str:
        context = self.context
        weights = context.latest_or_model(prefer_latest=context.spec.weights == "latest")
        if weights == context.model.source and not context.model.is_weights:
            raise RuntimeError("evaluate has no weights: no earlier train stage and the job's model is a yaml")
        return weights

    def run(self) -> dict:
        from ultralytics import YOLO

        context, spec = self.context, self.context.spec
        weights = self.weights()
        det_metrics = YOLO(weights).val(**self.ultralytics_args())
        summary = detection_summary(det_metrics, context.dataset.names)
        report = {
            "weights": weights,
            "split": spec.split,
            **summary,
            "confusion_matrix": {
                "labels": [*context.dataset.names, "background"],
                "matrix": det_metrics.confusion_matrix.matrix.astype(int).tolist(),
                "rows": "predicted",
            },
            "speed_ms_per_image": {k: round(float(v), 3) for k, v in det_metrics.speed.items()},
        }
        (context.stage_dir / "metrics.json").write_text(json.dumps(report, indent=2))
        context.reporter.progress(1, None)
        return {
            "evaluated_weights": weights,
            "split": spec.split,
            "metrics": summary,
            "report": context.relative(context.stage_dir / "metrics.json"),
        }
