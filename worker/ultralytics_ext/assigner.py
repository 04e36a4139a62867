"""A task-aligned assigner that gives thin boxes (1-3 px wide: stems, barlines, cracks) a learning signal.

It changes two things of Ultralytics' ``TaskAlignedAssigner`` and nothing else: the IoU that aligns anchors
(CIoU's aspect-ratio penalty zeroes it for a thin box, so no anchor is picked) and a floor under the class
target of positive anchors (score^alpha x IoU^6 of a thin box falls under the normaliser's 1e-9 eps, leaving
the class target and the box-loss weight ~0). With ``iou="ciou"`` and ``target_floor=0`` it is Ultralytics'
assigner. It is built per loss, never patched into Ultralytics, so other stages in the same process see the
plain assigner."""

from __future__ import annotations

import torch
from ultralytics.utils.metrics import bbox_iou
from ultralytics.utils.tal import TaskAlignedAssigner

from shared.stage_kinds.training_options import ThinAssigner
from worker.ultralytics_ext.starvation import STARVED_TARGET, box_assignment


def floor_class_targets(
    target_scores: torch.Tensor,
    target_labels: torch.Tensor,
    fg_mask: torch.Tensor,
    target_gt_idx: torch.Tensor,
    n_boxes: int,
    floor: float,
    starved_only: bool,
) -> torch.Tensor:
    """Raise the class target of positive anchors to at least ``floor``; with ``starved_only``, only the anchors
    of boxes whose best target is below ``STARVED_TARGET``. Other entries are returned unchanged."""
    chosen = fg_mask.bool()
    if starved_only:
        _, best = box_assignment(fg_mask, target_gt_idx, target_scores, n_boxes)
        starved_box = best < STARVED_TARGET
        chosen = chosen & starved_box.gather(1, target_gt_idx.long())
    label = target_labels.long().unsqueeze(-1)
    class_target = target_scores.gather(-1, label)
    floored = torch.where(chosen.unsqueeze(-1), class_target.clamp(min=floor), class_target)
    return target_scores.scatter(-1, label, floored)


def finest_level_size(n_anchors: int, strides: list[float]) -> int:
    """How many of ``n_anchors`` (levels concatenated finest first, each an (H/s) x (W/s) grid) belong to the
    finest level: n_anchors = H W sum(1/s^2), so the finest holds n_anchors / sum((s_0/s)^2)."""
    share = sum((strides[0] / s) ** 2 for s in strides)
    finest = round(n_anchors / share)
    if abs(finest * share - n_anchors) > 1e-6 * n_anchors + 1e-9:
        raise ValueError(f"{n_anchors} anchors do not split into levels of strides {list(strides)}")
    return finest


def yield_contested(
    mask_pos: torch.Tensor, overlaps: torch.Tensor, yielding: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Take from the ``yielding`` boxes (b, n) every anchor another box claims too: ``mask_pos`` (b, n, anchors)
    loses those claims and their ``overlaps`` drop to -1, so Ultralytics' highest-overlap rule never gives the
    anchor back to them."""
    claimed = mask_pos.bool()
    widened = yielding.unsqueeze(-1)
    other_claim = (claimed & ~widened).any(1, keepdim=True)
    lose = claimed & widened & other_claim
    return mask_pos.masked_fill(lose, 0), overlaps.masked_fill(lose, -1.0)


def keep_best(chosen: torch.Tensor, metrics: torch.Tensor, boxes: torch.Tensor, k: int) -> torch.Tensor:
    """``chosen`` (b, n, anchors) with each of the marked ``boxes`` (b, n) cut to its ``k`` highest-``metrics``
    anchors (ties at the k-th value are kept); other boxes' rows are returned unchanged."""
    kth = torch.topk(metrics, k, dim=-1).values[..., -1:]
    drop = boxes.unsqueeze(-1) & (metrics < kth)
    return chosen.masked_fill(drop, 0)


class ThinAwareAssigner(TaskAlignedAssigner):
    """``TaskAlignedAssigner`` with a choice of alignment IoU, a floor on positive anchors' class targets, and
    classes that yield contested anchors (``yield_classes``: boxes of those classes keep no anchor another box
    also claims, e.g. stems widened by ``widen_thin`` crossing a beam), classes whose boxes take candidate
    anchors from the finest level only (``finest_classes``) or from the coarser levels only (``coarse_classes``;
    a box with no candidate there keeps its finest-level ones), and classes whose boxes keep at most ``few_topk``
    positives (``few_classes``)."""

    def __init__(
        self,
        *args,
        iou: str = "ciou",
        target_floor: float = 0.0,
        floor_on: str = "all",
        yield_classes: frozenset[int] = frozenset(),
        finest_classes: frozenset[int] = frozenset(),
        few_classes: frozenset[int] = frozenset(),
        few_topk: int | None = None,
        coarse_classes: frozenset[int] = frozenset(),
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.yield_classes = frozenset(int(c) for c in yield_classes)
        self.finest_classes = frozenset(int(c) for c in finest_classes)
        if few_classes and (few_topk is None or not 1 <= few_topk <= self.topk):
            raise ValueError(f"few_topk must be in [1, {self.topk}] for classes {sorted(few_classes)}, got {few_topk}")
        self.few_classes = frozenset(int(c) for c in few_classes)
        self.few_topk = few_topk
        self.coarse_classes = frozenset(int(c) for c in coarse_classes)
        self._coarse_only: torch.Tensor | None = None
        self._yielding: torch.Tensor | None = None
        self._finest_only: torch.Tensor | None = None
        self._few: torch.Tensor | None = None
        if iou not in ("ciou", "iou") or floor_on not in ("all", "starved") or not 0.0 <= target_floor <= 1.0:
            raise ValueError(f"bad thin-assigner options: iou={iou!r} target_floor={target_floor} floor_on={floor_on!r}")
        self.iou = iou
        self.target_floor = target_floor
        self.floor_on = floor_on

    @classmethod
    def like(
        cls,
        assigner: TaskAlignedAssigner,
        options: ThinAssigner | None,
        yield_classes: frozenset[int] = frozenset(),
        finest_classes: frozenset[int] = frozenset(),
        few_classes: frozenset[int] = frozenset(),
        few_topk: int | None = None,
        coarse_classes: frozenset[int] = frozenset(),
    ) -> ThinAwareAssigner:
        """A thin-aware assigner with the top-k, alpha, beta, strides and eps of the one a loss built; with
        ``options`` None, Ultralytics' alignment (CIoU, no floor) and only ``yield_classes`` and
        ``finest_classes`` differ."""
        options = options or ThinAssigner(iou="ciou", target_floor=0.0, floor_on="all")
        return cls(
            topk=assigner.topk,
            topk2=assigner.topk2,
            num_classes=assigner.num_classes,
            alpha=assigner.alpha,
            beta=assigner.beta,
            stride=assigner.stride,
            eps=assigner.eps,
            iou=options.iou,
            target_floor=options.target_floor,
            floor_on=options.floor_on,
            yield_classes=yield_classes,
            finest_classes=finest_classes,
            few_classes=few_classes,
            few_topk=few_topk,
            coarse_classes=coarse_classes,
        )

    def iou_calculation(self, gt_bboxes: torch.Tensor, pd_bboxes: torch.Tensor) -> torch.Tensor:
        if self.iou == "ciou":
            return super().iou_calculation(gt_bboxes, pd_bboxes)
        return bbox_iou(gt_bboxes, pd_bboxes, xywh=False).squeeze(-1).clamp_(0)

    def select_candidates_in_gts(self, xy_centers, gt_bboxes, mask_gt, eps=1e-9):
        mask = super().select_candidates_in_gts(xy_centers, gt_bboxes, mask_gt, eps)
        finest_only = self._finest_only is not None and self._finest_only.shape[1] == mask.shape[1]
        coarse_only = self._coarse_only is not None and self._coarse_only.shape[1] == mask.shape[1]
        if not (finest_only or coarse_only):
            return mask
        coarse = torch.ones(mask.shape[-1], dtype=torch.bool, device=mask.device)
        coarse[: finest_level_size(mask.shape[-1], list(self.stride))] = False
        if finest_only:
            mask = mask & ~(self._finest_only.unsqueeze(-1) & coarse)
        if coarse_only:
            gated = mask & ~(self._coarse_only.unsqueeze(-1) & ~coarse)
            mask = torch.where(gated.any(-1, keepdim=True), gated, mask)  # a box left without candidates keeps them
        return mask

    def select_topk_candidates(self, metrics, topk_mask=None):
        chosen = super().select_topk_candidates(metrics, topk_mask)
        if self._few is None or self._few.shape[1] != metrics.shape[1]:
            return chosen
        return keep_best(chosen, metrics, self._few, self.few_topk)

    def select_highest_overlaps(self, mask_pos, overlaps, n_max_boxes, align_metric):
        if self._yielding is not None and self._yielding.shape[1] == mask_pos.shape[1]:
            mask_pos, overlaps = yield_contested(mask_pos, overlaps, self._yielding)
        return super().select_highest_overlaps(mask_pos, overlaps, n_max_boxes, align_metric)

    @torch.no_grad()
    def forward(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt, **extra):
        self._yielding = self._boxes_of(self.yield_classes, gt_labels, mask_gt)
        self._finest_only = self._boxes_of(self.finest_classes, gt_labels, mask_gt)
        self._few = self._boxes_of(self.few_classes, gt_labels, mask_gt)
        self._coarse_only = self._boxes_of(self.coarse_classes, gt_labels, mask_gt)
        target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx = super().forward(
            pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt, **extra
        )
        if self.target_floor > 0 and gt_bboxes.shape[1]:
            target_scores = floor_class_targets(
                target_scores,
                target_labels,
                fg_mask,
                target_gt_idx,
                gt_bboxes.shape[1],
                self.target_floor,
                starved_only=self.floor_on == "starved",
            )
        return target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx

    @staticmethod
    def _boxes_of(classes: frozenset[int], gt_labels: torch.Tensor, mask_gt: torch.Tensor) -> torch.Tensor | None:
        """(b, n) mask of the real boxes whose class is in ``classes``; None when there are none to mark."""
        if not classes or not gt_labels.numel():
            return None
        ids = torch.tensor(sorted(classes), device=gt_labels.device)
        return torch.isin(gt_labels.squeeze(-1).long(), ids) & mask_gt.squeeze(-1).bool()
