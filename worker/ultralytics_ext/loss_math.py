"""The maths of stagerun's detection loss options, as pure tensor functions (no Ultralytics state).

The classification term works on Ultralytics' soft task-aligned targets ``t`` in [0, 1] (not 0/1 labels),
element by element; the caller keeps Ultralytics' reduction (sum over anchors and classes divided by the
target-score sum), so magnitudes stay comparable with the plain loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_bce(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 0.0, alpha: float | None = None
) -> torch.Tensor:
    """Unreduced focal binary cross-entropy on soft targets.

    ``BCE(x, t) * |t - sigmoid(x)|^gamma * (alpha * t + (1 - alpha) * (1 - t))``. For 0/1 targets
    ``|t - p|`` is Lin et al.'s ``1 - p_t`` and the alpha factor is their ``alpha_t``; on soft targets it is
    the quality focal loss of Li et al. 2020 (Generalized Focal Loss), which is zero-modulated where the
    prediction already equals the target. ``gamma=0`` and ``alpha=None`` give plain BCE, bit for bit."""
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if gamma:
        loss = loss * (targets - logits.sigmoid()).abs().pow(gamma)
    if alpha is not None:
        loss = loss * (alpha * targets + (1.0 - alpha) * (1.0 - targets))
    return loss


def small_box_mask(
    boxes_xyxy: torch.Tensor, image_hw: tuple[float, float] | torch.Tensor, threshold: float, measure: str = "area"
) -> torch.Tensor:
    """True for boxes (pixels, xyxy, any leading shape) smaller than ``threshold`` as a share of the image:
    normalized area for ``measure='area'``, the normalized smaller side for ``'width'`` (a vertical stem's
    width, a horizontal line's height)."""
    height, width = float(image_hw[0]), float(image_hw[1])
    box_w = (boxes_xyxy[..., 2] - boxes_xyxy[..., 0]) / width
    box_h = (boxes_xyxy[..., 3] - boxes_xyxy[..., 1]) / height
    if measure == "area":
        size = box_w * box_h
    elif measure == "width":
        size = torch.minimum(box_w, box_h)
    else:
        raise ValueError(f"unknown small-object measure {measure!r}")
    return size < threshold


def small_object_weights(target_scores: torch.Tensor, small: torch.Tensor, gain: float) -> torch.Tensor:
    """Target scores (..., anchors, classes) with the rows of anchors assigned to small boxes (``small``:
    ..., anchors) multiplied by ``gain``. Ultralytics weighs each foreground anchor's box and DFL loss by the
    sum of its target scores, so this raises those anchors' box loss by ``gain`` while the normalizer (the
    unscaled target-score sum) stays as it was."""
    factor = torch.where(small, torch.as_tensor(gain, dtype=target_scores.dtype, device=target_scores.device), 1.0)
    return target_scores * factor.unsqueeze(-1).to(target_scores.dtype)
