"""stagerun's detection loss: Ultralytics' ``v8DetectionLoss`` with per-class weights, focal modulation of
the classification term and a small-object gain on the box/DFL terms.

It overrides only the pieces Ultralytics' loss calls through attributes: ``bce`` (the unreduced
classification loss), ``class_weights`` (multiplied into it), ``bbox_loss`` (box and DFL terms) and
``assigner``. Everything else, the reduction included, is Ultralytics' own code, so with every option
neutral the loss equals Ultralytics' to float tolerance.

The criterion lives only on the training model (and its EMA copy); Ultralytics strips ``criterion`` from
every checkpoint it writes, so no instance of these classes reaches best.pt or last.pt."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from ultralytics.utils.loss import BboxLoss, v8DetectionLoss
from ultralytics.utils.metrics import bbox_iou

from worker.ultralytics_ext.loss_math import focal_bce, small_box_mask, small_object_weights
from worker.ultralytics_ext.widening import MIN_HALF_WIDTH_PX, shrink_boxes, widen_boxes


@dataclass(frozen=True)
class LossSettings:
    """What the loss does beyond Ultralytics'. ``class_weights`` has one weight per class (None: all 1)."""

    class_weights: Sequence[float] | None = None
    gamma: float = 0.0
    alpha: float | None = None
    small_gain: float = 1.0
    small_threshold: float = 0.0
    small_measure: str = "area"
    box_pad_px: Sequence[tuple[float, float]] | None = None  # widen_thin: (width, height) pad per class, pixels
    box_class_weights: Sequence[float] | None = None  # per-class weight of the box and DFL terms (None: all 1)
    narrowed_iou: bool = False  # widen_thin box_iou 'narrowed': the IoU term compares boxes narrowed by box_pad_px
    head_box_classes: tuple[int, ...] = ()  # widen_thin box_gradient 'head': their box/DFL gradient stops at the head


@dataclass(frozen=True)
class Assignment:
    """One batch's task-aligned assignment, as the loss used it (pixel coordinates, detached).

    ``gt_*`` are per image and padded (``mask_gt`` marks real boxes); ``target_*``, ``fg_mask`` and
    ``target_gt_idx`` are per anchor; ``target_gt_idx`` indexes the image's ``gt_*`` rows."""

    anchor_points: torch.Tensor  # (anchors, 2)
    pred_scores: torch.Tensor  # (batch, anchors, classes) sigmoid scores the assigner saw
    pred_bboxes: torch.Tensor  # (batch, anchors, 4) xyxy predicted boxes the assigner saw
    gt_labels: torch.Tensor  # (batch, max_boxes, 1)
    gt_bboxes: torch.Tensor  # (batch, max_boxes, 4) xyxy
    mask_gt: torch.Tensor  # (batch, max_boxes, 1)
    target_labels: torch.Tensor  # (batch, anchors)
    target_bboxes: torch.Tensor  # (batch, anchors, 4) xyxy
    target_scores: torch.Tensor  # (batch, anchors, classes)
    fg_mask: torch.Tensor  # (batch, anchors) bool
    target_gt_idx: torch.Tensor  # (batch, anchors)


class RouteBoxGradient(torch.autograd.Function):
    """Identity on the head's box output whose gradient is split per anchor between two copies of it: the
    one computed from the features (``through``) and the one computed from detached features (``head``).
    ``route.mask`` (batch, anchors), set after assignment and before backward, sends an anchor's gradient
    to ``head``; with no mask everything goes to ``through``."""

    @staticmethod
    def forward(ctx, through, head, route):
        ctx.route = route
        return through.view_as(through)

    @staticmethod
    def backward(ctx, grad):
        mask = ctx.route.mask
        if mask is None:
            return grad, None, None
        to_head = mask.to(grad.dtype).unsqueeze(1)  # boxes are (batch, 4 * reg_max, anchors)
        return grad * (1.0 - to_head), grad * to_head, None


class BoxRoute:
    """Which anchors' box gradient stops at the head in the current batch (see ``RouteBoxGradient``)."""

    mask: torch.Tensor | None = None


def head_boxes(detect: nn.Module, feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """The Detect head's box output (batch, 4 * reg_max, anchors) from detached features, as its
    ``forward_head`` concatenates it. BatchNorm running statistics are left as the first pass set them."""
    norms = [m for m in detect.cv2.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        bs = feats[0].shape[0]
        return torch.cat(
            [detect.cv2[i](f.detach()).view(bs, 4 * detect.reg_max, -1) for i, f in enumerate(feats)], dim=-1
        )
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum


class WeightedBboxLoss(BboxLoss):
    """Ultralytics' box/DFL loss with anchors assigned to small ground-truth boxes weighted ``gain`` times, and
    each anchor weighted by its class's ``class_weights`` entry when given. Both act on the per-anchor weight
    (the target scores) and leave the normalizer as it was.

    With ``narrow_px`` (a (classes, 2) width/height pad in pixels) the IoU term compares the predicted and the
    target box both shrunk by the anchor's class pad: the thin box as labelled against the prediction as
    stagerun's validators narrow it. The DFL term keeps the widened distances (bins of one stride)."""

    def __init__(
        self,
        reg_max: int,
        gain: float = 1.0,
        threshold: float = 0.0,
        measure: str = "area",
        class_weights: torch.Tensor | None = None,
        narrow_px: torch.Tensor | None = None,
    ):
        super().__init__(reg_max)
        self.gain, self.threshold, self.measure = gain, threshold, measure
        self.class_weights = None if class_weights is None else class_weights.view(1, 1, -1)
        self.narrow_px = narrow_px

    def forward(
        self,
        pred_dist,
        pred_bboxes,
        anchor_points,
        target_bboxes,
        target_scores,
        target_scores_sum,
        fg_mask,
        imgsz,
        stride,
    ):
        weighted = target_scores
        if self.gain != 1.0:
            small = small_box_mask(target_bboxes * stride, imgsz, self.threshold, self.measure)
            weighted = small_object_weights(target_scores, small, self.gain)
        if self.class_weights is not None:
            weighted = weighted * self.class_weights.to(weighted.dtype)
        loss_iou, loss_dfl = super().forward(
            pred_dist, pred_bboxes, anchor_points, target_bboxes, weighted, target_scores_sum, fg_mask, imgsz, stride
        )
        if self.narrow_px is not None:
            loss_iou = self.narrowed_iou_loss(pred_bboxes, target_bboxes, weighted, target_scores_sum, fg_mask, stride)
        return loss_iou, loss_dfl

    def narrowed_iou_loss(self, pred_bboxes, target_bboxes, weighted, target_scores_sum, fg_mask, stride):
        """Ultralytics' CIoU term on boxes narrowed by their anchor's class pad. Boxes arrive in grid units
        (pixels over the anchor's stride), so the pad is divided by that stride; an anchor's class is its
        target's (the one non-zero target score). It replaces the widened IoU term Ultralytics' forward computed
        beside the DFL term: one more CIoU over the positive anchors, so the DFL term stays Ultralytics' code."""
        fg = fg_mask.nonzero(as_tuple=True)
        weight = weighted[fg].sum(-1, keepdim=True)
        classes = weighted[fg].argmax(-1)
        anchor_stride = stride.view(-1)[fg[1]].unsqueeze(-1)
        shrink = self.narrow_px.to(pred_bboxes.dtype)[classes] / anchor_stride
        min_half = MIN_HALF_WIDTH_PX / anchor_stride
        pred = shrink_boxes(pred_bboxes[fg], shrink, min_half)
        target = shrink_boxes(target_bboxes[fg], shrink, min_half)
        iou = bbox_iou(pred, target, xywh=False, CIoU=True)
        return ((1.0 - iou) * weight).sum() / target_scores_sum


class StagerunDetectionLoss(v8DetectionLoss):
    """Weighted focal classification, small-object box gain, and a pluggable assigner.

    Hooks for assigner work (thin objects): override ``make_assigner`` or pass ``assigner=`` (any module
    with ``TaskAlignedAssigner``'s call signature and outputs); register ``add_assignment_observer(fn)`` to
    receive each batch's ``Assignment`` (nothing is kept when no observer is registered)."""

    def __init__(self, model: nn.Module, settings: LossSettings, assigner: nn.Module | None = None, **kwargs):
        super().__init__(model, **kwargs)
        self.default_assigner = self.assigner  # the TaskAlignedAssigner Ultralytics' loss built
        self.settings = settings
        self.bce = partial(focal_bce, gamma=settings.gamma, alpha=settings.alpha)
        if settings.class_weights is not None:
            weights = self._per_class(settings.class_weights, "class weights")
            inherited = self.class_weights  # Ultralytics' cls_pw weights, when set: both apply
            self.class_weights = weights.view(1, 1, -1) * (inherited if inherited is not None else 1.0)
        box_weights = None
        if settings.box_class_weights is not None:
            box_weights = self._per_class(settings.box_class_weights, "box class weights")
        self.box_pad_px = None
        if settings.box_pad_px is not None:
            self.box_pad_px = torch.tensor([list(p) for p in settings.box_pad_px], dtype=torch.float32, device=self.device)
            if self.box_pad_px.shape != (self.nc, 2):
                raise ValueError(f"box pads of shape {tuple(self.box_pad_px.shape)} for a model with {self.nc} classes")
        if settings.narrowed_iou and self.box_pad_px is None:
            raise ValueError("a narrowed IoU term needs box pads")
        narrow_px = self.box_pad_px if settings.narrowed_iou else None
        if settings.small_gain != 1.0 or box_weights is not None or narrow_px is not None:
            self.bbox_loss = WeightedBboxLoss(
                self.reg_max, settings.small_gain, settings.small_threshold, settings.small_measure, box_weights, narrow_px
            ).to(self.device)
        self.task_assigner = assigner if assigner is not None else self.make_assigner()
        self.head_box_classes = torch.tensor(sorted(settings.head_box_classes), dtype=torch.long, device=self.device)
        self._detect = model.model[-1] if settings.head_box_classes else None
        self._route: BoxRoute | None = None
        self.assigner = self._assign  # Ultralytics' loss calls self.assigner(...)
        self.assignment_observers: list[Callable[[Assignment], None]] = []

    def _per_class(self, values: Sequence[float], what: str) -> torch.Tensor:
        tensor = torch.tensor(list(values), dtype=torch.float32, device=self.device)
        if tensor.numel() != self.nc:
            raise ValueError(f"{tensor.numel()} {what} for a model with {self.nc} classes")
        return tensor

    def preprocess(self, targets: torch.Tensor, batch_size: int, scale_tensor: torch.Tensor) -> torch.Tensor:
        """Ultralytics' padded (batch, boxes, class + xyxy pixels) targets; with ``widen_thin``, every real box
        grown by its class's pad (the all-zero padding rows stay zero: the loss tells boxes from them by sum)."""
        out = super().preprocess(targets, batch_size, scale_tensor)
        if self.box_pad_px is None or not out.shape[1]:
            return out
        real = out[..., 1:5].sum(-1, keepdim=True) > 0
        widened = widen_boxes(out[..., 1:5], out[..., 0], self.box_pad_px)
        out[..., 1:5] = torch.where(real, widened, out[..., 1:5])
        return out

    def parse_output(self, preds):
        """Ultralytics' training outputs; with ``head_box_classes`` and gradients on, the box output is routed
        so that those classes' positive anchors train the box branch only (``RouteBoxGradient``)."""
        preds = super().parse_output(preds)
        self._route = None
        if self._detect is None or not torch.is_grad_enabled() or not preds["boxes"].requires_grad:
            return preds
        self._route = BoxRoute()  # one per batch: a later forward cannot reroute this batch's backward
        detached = head_boxes(self._detect, preds["feats"])
        return dict(preds, boxes=RouteBoxGradient.apply(preds["boxes"], detached, self._route))

    def make_assigner(self) -> nn.Module:
        """The assigner this loss uses: Ultralytics' TaskAlignedAssigner as its loss built it."""
        return self.default_assigner

    def add_assignment_observer(self, observer: Callable[[Assignment], None]) -> None:
        self.assignment_observers.append(observer)

    def used_class_weights(self) -> list[float] | None:
        """The per-class weights multiplied into the classification term (ours times cls_pw's), if any."""
        return None if self.class_weights is None else [float(w) for w in self.class_weights.flatten()]

    def _assign(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt, **extra):
        result = self.task_assigner(pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt, **extra)
        if self._route is not None:
            target_labels, fg_mask = result[0], result[3]
            self._route.mask = fg_mask.bool() & torch.isin(target_labels.long(), self.head_box_classes)
        if self.assignment_observers:
            target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx = result
            assignment = Assignment(
                anchor_points=anc_points.detach(),
                pred_scores=pd_scores.detach(),
                pred_bboxes=pd_bboxes.detach(),
                gt_labels=gt_labels.detach(),
                gt_bboxes=gt_bboxes.detach(),
                mask_gt=mask_gt.detach(),
                target_labels=target_labels.detach(),
                target_bboxes=target_bboxes.detach(),
                target_scores=target_scores.detach(),
                fg_mask=fg_mask.detach(),
                target_gt_idx=target_gt_idx.detach(),
            )
            for observer in self.assignment_observers:
                observer(assignment)
        return result
