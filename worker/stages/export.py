"""The export stage: the weights as an ONNX model, then the exported model run with onnxruntime beside the
PyTorch model (worker/export_check.py), the stage failing when they disagree beyond its tolerances."""

from __future__ import annotations

import json

from shared.datasets.files import split_images
from shared.stage_kinds.export import KIND as EXPORT
from worker.stages.base import StageRunner


class ExportMismatch(RuntimeError):
    """The exported model does not reproduce the PyTorch model within the stage's tolerances."""


class ExportRunner(StageRunner):
    kind = EXPORT

    def run(self) -> dict:
        from worker.export_check import compare_outputs, export_onnx, map50_both

        context, spec = self.context, self.context.spec
        if spec.half and context.device == "cpu":
            raise ValueError("half (FP16) export needs a CUDA device; this worker runs on the CPU")
        onnx_path = export_onnx(
            context.weights, context.stage_dir, spec.imgsz, spec.opset, spec.dynamic, spec.half, spec.simplify,
            context.device,
        )
        narrowing = self._store_narrowing(onnx_path)
        context.reporter.progress(0, None)
        images = split_images(context.dataset.splits[spec.split])[: spec.check_images]
        outputs = compare_outputs(context.weights, onnx_path, images, spec.imgsz, context.device)
        accuracy = map50_both(
            context.weights, onnx_path, context.data_yaml, spec.split, spec.imgsz, spec.batch, context.device,
            spec.check_images,
        )
        map_diff = abs(accuracy["torch_mAP50"] - accuracy["onnx_mAP50"])
        check = {
            **outputs,
            **accuracy,
            "mAP50_diff": round(map_diff, 6),
            "tolerances": {"box_px": spec.box_tolerance_px, "score": spec.score_tolerance,
                           "mAP50": spec.map50_tolerance},
        }
        (context.stage_dir / "export_check.json").write_text(json.dumps(check, indent=2))
        context.reporter.progress(1, None)
        results = {
            "exported": context.relative(onnx_path),
            "format": spec.format,
            "source_weights": context.shown(context.weights),
            "size_bytes": onnx_path.stat().st_size,
            "narrowing_px": narrowing,
            "check": check,
            "report": context.relative(context.stage_dir / "export_check.json"),
        }
        context.reporter.results(results)
        problems = []
        if outputs["max_box_diff_px"] > spec.box_tolerance_px:
            problems.append(f"boxes differ by up to {outputs['max_box_diff_px']:.4g} px (tolerance {spec.box_tolerance_px})")
        if outputs["max_score_diff"] > spec.score_tolerance:
            problems.append(f"scores differ by up to {outputs['max_score_diff']:.4g} (tolerance {spec.score_tolerance})")
        if map_diff > spec.map50_tolerance:
            problems.append(f"mAP50 {accuracy['onnx_mAP50']:.4f} (ONNX) vs {accuracy['torch_mAP50']:.4f} (PyTorch), "
                            f"tolerance {spec.map50_tolerance}")
        if problems:
            raise ExportMismatch("the ONNX model does not match the PyTorch model: " + "; ".join(problems))
        return results

    def _store_narrowing(self, onnx_path) -> dict | None:
        """Weights trained with ``widen_thin`` predict thin classes wider by a stored pad that stagerun's evaluate
        and mine take off after NMS; the ONNX model gets that pad in its metadata (``stagerun_box_pad``, JSON: per
        class the width and height pad as a share of the long side) so a deployment can apply the same narrowing.
        Returns the pad in pixels at imgsz, None for weights without one. The check compares raw outputs, which
        the pad does not touch."""
        import onnx
        from ultralytics import YOLO

        from worker.ultralytics_ext.widening import ATTRIBUTE, model_pad, narrowing_px

        pad = model_pad(YOLO(self.context.weights))
        if pad is None:
            return None
        model = onnx.load(str(onnx_path))
        entry = model.metadata_props.add()
        entry.key, entry.value = ATTRIBUTE, json.dumps(pad)
        onnx.save(model, str(onnx_path))
        return narrowing_px(pad, self.context.spec.imgsz)
