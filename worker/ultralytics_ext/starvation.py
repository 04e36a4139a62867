"""Which ground-truth boxes the task-aligned assigner leaves without a learning signal.

A box is *unanchored* when no anchor is assigned to it, and *starved* when its best class target is ~0
(below ``STARVED_TARGET``; an unanchored box counts as starved, its best target being 0). Both come from
the assigner's own outputs, read by a forward hook while the loss runs, so measuring changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import torch

STARVED_TARGET = 1e-3


def box_assignment(
    fg_mask: torch.Tensor, target_gt_idx: torch.Tensor, target_scores: torch.Tensor, n_boxes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per ground-truth box (b, n_boxes): how many anchors it got, and its best class target (0 without any).

    ``fg_mask`` (b, anchors), ``target_gt_idx`` (b, anchors) and ``target_scores`` (b, anchors, classes)
    are the assigner's outputs."""
    fg = fg_mask.bool()
    anchor_target = torch.where(fg, target_scores.amax(-1).float(), torch.zeros((), device=fg.device))
    slot = torch.where(fg, target_gt_idx.long(), torch.full_like(target_gt_idx.long(), n_boxes))
    batch = fg.shape[0]
    anchors = torch.zeros(batch, n_boxes + 1, device=fg.device).scatter_add_(1, slot, fg.float())
    best = torch.zeros(batch, n_boxes + 1, device=fg.device).scatter_reduce_(1, slot, anchor_target, "amax")
    return anchors[:, :n_boxes], best[:, :n_boxes]


def class_counts(
    gt_labels: torch.Tensor, mask_gt: torch.Tensor, anchors: torch.Tensor, best: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """(num_classes, 3) counts of valid boxes: total, unanchored, starved."""
    valid = mask_gt.reshape(anchors.shape).bool()
    labels = gt_labels.reshape(anchors.shape).long()[valid]
    flags = torch.stack(
        [torch.ones_like(labels), (anchors[valid] == 0).long(), (best[valid] < STARVED_TARGET).long()], dim=1
    )
    return torch.zeros(num_classes, 3, dtype=torch.long, device=labels.device).index_add_(0, labels, flags)


def starvation_table(counts: torch.Tensor, names: dict[int, str] | list[str]) -> dict[str, dict]:
    """Per class name: boxes seen and the shares unanchored and starved (classes never seen are left out)."""
    names = dict(enumerate(names)) if isinstance(names, list) else names
    table = {}
    for class_id, (total, unanchored, starved) in enumerate(counts.tolist()):
        if total:
            table[names.get(class_id, str(class_id))] = {
                "boxes": total,
                "unanchored": round(unanchored / total, 4),
                "starved": round(starved / total, 4),
            }
    return table


def _assigner_of(criterion: object) -> torch.nn.Module | None:
    """The assigner module the loss calls: stagerun's loss keeps it as ``task_assigner``, Ultralytics'
    ``v8DetectionLoss`` as ``assigner``, and ``E2ELoss`` in its one-to-many branch."""
    for owner in (criterion, getattr(criterion, "one2many", None)):
        for attribute in ("task_assigner", "assigner"):
            assigner = getattr(owner, attribute, None)
            if isinstance(assigner, torch.nn.Module):
                return assigner
    return None


class StarvationCollector:
    """Counts starvation on the first ``batches`` training batches of the first and the last epoch and hands
    ``{"first_epoch": ..., "last_epoch": ...}`` to ``record`` after each measured epoch.

    Training is untouched: a forward hook reads what the loss's own assigner returned. The loss is built on the
    first batch, so the hook starts with the second batch of the first epoch."""

    def __init__(self, num_classes: int, names: dict[int, str], batches: int, record: Callable[[dict], None]):
        self.num_classes = num_classes
        self.names = names
        self.batches = batches
        self.record = record
        self.report: dict[str, dict] = {}
        self._phases: list[str] = []
        self._seen = 0
        self._counts = torch.zeros(num_classes, 3, dtype=torch.long)
        self._hooked: torch.nn.Module | None = None
        self._handle = None

    def attach(self, trainer) -> None:
        trainer.add_callback("on_train_epoch_start", self.on_train_epoch_start)
        trainer.add_callback("on_train_batch_end", self.on_train_batch_end)
        trainer.add_callback("on_train_epoch_end", self.on_train_epoch_end)
        trainer.add_callback("on_train_end", self.detach)

    def on_train_epoch_start(self, trainer) -> None:
        self._phases = [
            name
            for name, epoch in (("first_epoch", trainer.start_epoch), ("last_epoch", trainer.epochs - 1))
            if trainer.epoch == epoch
        ]
        self._seen = 0
        self._counts.zero_()
        self._hook(trainer)

    def on_train_batch_end(self, trainer) -> None:
        self._hook(trainer)

    def on_train_epoch_end(self, trainer) -> None:
        if self._phases and self._seen:
            measured = {
                "epoch": trainer.epoch + 1,
                "batches": self._seen,
                "classes": starvation_table(self._counts, self.names),
            }
            self.report.update(dict.fromkeys(self._phases, measured))
            self.record(dict(self.report))
        self._phases = []

    def detach(self, _trainer=None) -> None:
        if self._handle is not None:
            self._handle.remove()
        self._handle = self._hooked = None

    def _hook(self, trainer) -> None:
        model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
        assigner = _assigner_of(getattr(model, "criterion", None))
        if assigner is not None and assigner is not self._hooked:
            self.detach()
            self._handle = assigner.register_forward_hook(self._on_assignment)
            self._hooked = assigner

    def _on_assignment(self, _module, args, output) -> None:
        if not self._phases or self._seen >= self.batches:
            return
        gt_labels, gt_bboxes, mask_gt = args[3], args[4], args[5]
        _, _, target_scores, fg_mask, target_gt_idx = output
        anchors, best = box_assignment(fg_mask, target_gt_idx, target_scores, gt_bboxes.shape[1])
        self._counts += class_counts(gt_labels, mask_gt, anchors, best, self.num_classes).cpu()
        self._seen += 1
