"""``widen_thin.yield_anchors``: a widened box (a stem grown to 8 px) gives up the anchors another box (the beam it
crosses) also claims, where Ultralytics' rule would hand them to whichever box the prediction overlaps most."""

from __future__ import annotations

import torch
from ultralytics.utils.tal import TaskAlignedAssigner

from worker.ultralytics_ext.assigner import ThinAwareAssigner, yield_contested

BEAM, STEM = 2, 1


def assign(assigner):
    """A beam [0, 0, 48, 16] and a widened stem [16, 0, 24, 48] on an 8 px anchor grid; every prediction is
    [16, 0, 24, 24], which overlaps the stem (IoU 0.5) more than the beam (0.15), so on overlap alone the stem
    wins every anchor they share."""
    xs = torch.arange(4, 48, 8, dtype=torch.float32)
    anchors = torch.cartesian_prod(xs, xs)[:, [1, 0]]  # (36, 2) x, y
    gt_bboxes = torch.tensor([[[0.0, 0.0, 48.0, 16.0], [16.0, 0.0, 24.0, 48.0]]])
    gt_labels = torch.tensor([[[BEAM], [STEM]]])
    mask_gt = torch.ones(1, 2, 1)
    pd_bboxes = torch.tensor([16.0, 0.0, 24.0, 24.0]).expand(1, len(anchors), 4).clone()
    pd_scores = torch.full((1, len(anchors), 3), 0.5)
    _, _, _, fg_mask, gt_idx = assigner(pd_scores, pd_bboxes, anchors, gt_labels, gt_bboxes, mask_gt)
    shared = [i for i, (x, y) in enumerate(anchors.tolist()) if 16 < x < 24 and y < 16]
    return fg_mask[0], gt_idx[0], shared


def test_without_yield_the_stem_takes_the_shared_anchors_with_yield_the_beam_keeps_them():
    plain = TaskAlignedAssigner(topk=12, num_classes=3)
    fg, idx, shared = assign(plain)
    assert shared and all(fg[i] and idx[i] == 1 for i in shared)

    yielding = ThinAwareAssigner.like(plain, None, frozenset({STEM}))
    fg, idx, shared = assign(yielding)
    assert all(fg[i] and idx[i] == 0 for i in shared)  # the beam's
    below = [i for i in range(len(fg)) if fg[i] and idx[i] == 1]
    assert below  # the stem keeps the anchors only it claims, below the beam


def test_yield_contested_leaves_uncontested_claims_alone():
    mask = torch.tensor([[[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]]])
    overlaps = torch.tensor([[[0.2, 0.3, 0.0], [0.9, 0.0, 0.8]]])
    new_mask, new_overlaps = yield_contested(mask, overlaps, torch.tensor([[False, True]]))
    assert new_mask.tolist() == [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]
    assert new_overlaps[0, 1, 0] == -1.0 and new_overlaps[0, 1, 2] == 0.8
