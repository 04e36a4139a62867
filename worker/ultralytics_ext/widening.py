"""``widen_thin``: train on thin boxes widened along their thin side; narrow predictions back exactly.

The pad of each class is a share of the image's long side (Ultralytics letterboxes the long side to imgsz,
so the same share holds at any training or evaluation size). It is stored on the model object as
``stagerun_box_pad``, a plain dict, so it travels inside best.pt; plain Ultralytics never reads it (its
predictions stay widened), stagerun's validators subtract it (``NarrowingValidator``, which the trainer's
per-epoch validation, the evaluate stage and the mine stage use)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from ultralytics.models.yolo.detect import DetectionValidator

from shared.class_weights import class_indices
from shared.stage_kinds.training_options import WidenThin

ATTRIBUTE = "stagerun_box_pad"
MIN_HALF_WIDTH_PX = 0.05  # a prediction narrower than its pad keeps a sliver at its centre, not a negative box
MIN_BALANCED_WEIGHT = 0.01  # a class padded from (almost) nothing still regresses its box


def pads_of_long_side(widen: WidenThin, profile: dict, names: Sequence[str], imgsz: int) -> list[tuple[float, float]]:
    """(width pad, height pad) per class as a share of the long side: a listed class whose median width (or
    height) at ``imgsz`` is under ``target_px`` is padded by the difference; every other class gets (0, 0)."""
    pads = [(0.0, 0.0)] * len(names)
    keys = widen.classes if widen.classes is not None else []
    target = widen.target_px / imgsz
    by_id = {entry["id"]: entry for entry in profile["classes"]}
    for index in class_indices(keys, names, "widen_thin.classes"):
        entry = by_id.get(index)
        if entry is None or not entry["instances"]:
            continue
        width, height = entry["median_width_of_long_side"], entry["median_height_of_long_side"]
        pads[index] = (
            round(max(target - width, 0.0), 6) if width < target else 0.0,
            round(max(target - height, 0.0), 6) if height < target else 0.0,
        )
    return pads


def stored_pad(names: Sequence[str], pads: Sequence[tuple[float, float]], target_px: float, imgsz: int) -> dict:
    """The dict kept on the model (only builtins: a checkpoint must load where stagerun is absent)."""
    return {
        "version": 1,
        "unit": "share of the image's long side",
        "names": [str(name) for name in names],
        "pad": [[float(w), float(h)] for w, h in pads],
        "target_px": float(target_px),
        "imgsz": int(imgsz),
    }


def box_weights(pad: dict, box_weight: float | str) -> list[float]:
    """Per-class weights of the box and DFL terms for ``widen_thin.box_weight``: 1 for a class not widened;
    for a widened one either ``box_weight`` itself or, for 'balanced', its unwidened thin side over the target
    (the inverse of how many more anchors widening puts inside its boxes)."""
    target = pad["target_px"] / pad["imgsz"]
    weights = []
    for width_pad, height_pad in pad["pad"]:
        grown = max(width_pad, height_pad)
        if not grown:
            weights.append(1.0)
        elif box_weight == "balanced":
            weights.append(round(max(target - grown, 0.0) / target, 6) or MIN_BALANCED_WEIGHT)
        else:
            weights.append(float(box_weight))
    return weights


def model_pad(model: object) -> dict | None:
    """The stored pad of a ``DetectionModel``, an ``AutoBackend`` around one, or a ``YOLO`` object."""
    for candidate in (model, getattr(model, "model", None), getattr(getattr(model, "model", None), "model", None)):
        pad = getattr(candidate, ATTRIBUTE, None)
        if isinstance(pad, dict) and pad.get("version") == 1:
            return pad
    return None


def pad_pixels(pad: dict, imgsz: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(classes, 2) width and height pads in pixels of a letterboxed image whose long side is ``imgsz``."""
    return torch.tensor(pad["pad"], dtype=torch.float32, device=device) * float(imgsz)


def widen_boxes(boxes: torch.Tensor, classes: torch.Tensor, pads_px: torch.Tensor) -> torch.Tensor:
    """xyxy ``boxes`` (..., 4) grown about their centre by their class's (width, height) pad."""
    grow = pads_px[classes.long()].to(boxes.dtype) / 2  # (..., 2)
    return torch.cat((boxes[..., :2] - grow, boxes[..., 2:] + grow), dim=-1)


def narrow_boxes(boxes: torch.Tensor, classes: torch.Tensor, pads_px: torch.Tensor) -> torch.Tensor:
    """The inverse of ``widen_boxes``; a box narrower than its pad keeps a sliver at its centre."""
    return shrink_boxes(boxes, pads_px[classes.long()].to(boxes.dtype))


def shrink_boxes(boxes: torch.Tensor, shrink: torch.Tensor, min_half: float = MIN_HALF_WIDTH_PX) -> torch.Tensor:
    """xyxy ``boxes`` (..., 4) shrunk about their centre by ``shrink`` (..., 2) (width, height), each side kept
    at least ``min_half`` from the centre; a side with no shrink is returned as it was."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    half = ((boxes[..., 2:] - boxes[..., :2] - shrink) / 2).clamp(min=min_half)
    half = torch.where(shrink > 0, half, (boxes[..., 2:] - boxes[..., :2]) / 2)
    return torch.cat((centre - half, centre + half), dim=-1)


class NarrowingValidator(DetectionValidator):
    """Ultralytics' validator, with each prediction narrowed by its class's stored pad (when the model has one)
    right after NMS, in letterboxed pixels, so every metric, plot and saved prediction sees narrowed boxes."""

    box_pad_px: torch.Tensor | None = None

    def init_metrics(self, model) -> None:
        super().init_metrics(model)
        pad = model_pad(model)
        if pad is not None and len(pad["pad"]) != self.nc:
            raise ValueError(f"the weights' {ATTRIBUTE} has {len(pad['pad'])} classes, the model {self.nc}")
        self.box_pad_px = None if pad is None else pad_pixels(pad, int(self.args.imgsz), self.device)

    def postprocess(self, preds):
        outputs = super().postprocess(preds)
        if self.box_pad_px is None:
            return outputs
        for output in outputs:
            if output["bboxes"].shape[0]:
                pads = self.box_pad_px.to(output["bboxes"].device)
                output["bboxes"] = narrow_boxes(output["bboxes"], output["cls"], pads)
        return outputs


def narrowing_px(pad: dict, imgsz: int) -> dict[str, list[float]]:
    """The stored pad of each narrowed class in pixels at ``imgsz`` (for reports)."""
    return {
        name: [round(w * imgsz, 3), round(h * imgsz, 3)]
        for name, (w, h) in zip(pad["names"], pad["pad"], strict=True)
        if w or h
    }
