"""The thin-aware assigner on hand-made tensors: a 128 px image, anchors at strides 8/16/32, every anchor
predicting a 64 x 64 box centred on itself with score 0.5. Box 0 is 1 px wide and 80 px tall (a stem);
box 1 is an ordinary 24 x 24 square.

For the stem, a 64 x 64 prediction from an anchor near it covers 1 x 64 px of it: IoU 64 / (4096 + 80 - 64)
= 0.01556. Its CIoU is below 0 (clamped to 0, so top-k picks no anchor inside it), and with plain IoU its metric
0.5^0.5 x 0.01556^6 = 1.006e-11 sits under the normaliser's 1e-9 eps, so its best target is
0.01556 x 1.006e-11 / (1.006e-11 + 1e-9) = 1.55e-4, i.e. ~0."""

from __future__ import annotations

import pytest
import torch
from ultralytics.utils.tal import TaskAlignedAssigner, make_anchors

from worker.ultralytics_ext.assigner import ThinAwareAssigner, floor_class_targets
from worker.ultralytics_ext.starvation import STARVED_TARGET, box_assignment, class_counts, starvation_table

ASSIGNER_ARGS = {"topk": 10, "num_classes": 3, "alpha": 0.5, "beta": 6.0, "stride": [8, 16, 32]}
STEM, SQUARE = 0, 1


def anchor_points(size: int = 128) -> torch.Tensor:
    strides = torch.tensor([8.0, 16.0, 32.0])
    feats = [torch.zeros(1, 1, size // int(s), size // int(s)) for s in strides]
    points, stride_tensor = make_anchors(feats, strides, 0.5)
    return points * stride_tensor


def assign(assigner, side: float = 64.0, gt_bboxes=None, gt_labels=None):
    points = anchor_points()
    pd_bboxes = torch.cat([points - side / 2, points + side / 2], 1)[None]
    pd_scores = torch.full((1, len(points), 3), 0.5)
    gt_labels = torch.tensor([[[1.0], [0.0]]]) if gt_labels is None else gt_labels
    gt_bboxes = torch.tensor([[[64.0, 20.0, 65.0, 100.0], [20.0, 20.0, 44.0, 44.0]]]) if gt_bboxes is None else gt_bboxes
    mask_gt = torch.ones(*gt_bboxes.shape[:2], 1)
    return assigner(pd_scores, pd_bboxes, points, gt_labels, gt_bboxes, mask_gt)


def per_box(result, n_boxes: int = 2):
    _, _, target_scores, fg_mask, target_gt_idx = result
    anchors, best = box_assignment(fg_mask, target_gt_idx, target_scores, n_boxes)
    return anchors[0].tolist(), best[0].tolist()


def box_targets(result, box: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The positive anchors of one box and their target scores."""
    _, _, target_scores, fg_mask, target_gt_idx = result
    mine = fg_mask[0] & (target_gt_idx[0] == box)
    return mine, target_scores[0][mine]


# a stem widened to 8 px (class 1) and the 24 x 24 square (class 0); the finest level's anchors come first
WIDENED = torch.tensor([[[68.0, 20.0, 76.0, 100.0], [20.0, 20.0, 44.0, 44.0]]])
FINEST = 16 * 16


def assert_same_targets(first, second, box: int) -> None:
    """One box has exactly the same positive anchors and target scores in two assignments."""
    for a, b in zip(box_targets(first, box), box_targets(second, box), strict=True):
        torch.testing.assert_close(a, b)


def test_plain_ultralytics_starves_the_thin_box():
    anchors, best = per_box(assign(TaskAlignedAssigner(**ASSIGNER_ARGS)))
    assert anchors[STEM] == 0 and best[STEM] == 0.0
    assert anchors[SQUARE] > 0 and best[SQUARE] > 0.1


def test_plain_iou_anchors_the_thin_box_but_its_target_stays_near_zero():
    anchors, best = per_box(assign(ThinAwareAssigner(**ASSIGNER_ARGS, iou="iou")))
    assert anchors[STEM] == 10  # top-k now finds anchors inside the stem
    assert best[STEM] == pytest.approx(1.55e-4, rel=0.01) and best[STEM] < STARVED_TARGET


@pytest.mark.parametrize("floor_on", ["all", "starved"])
def test_iou_and_floor_give_the_thin_box_anchors_at_the_floor(floor_on):
    result = assign(ThinAwareAssigner(**ASSIGNER_ARGS, iou="iou", target_floor=0.1, floor_on=floor_on))
    mine, targets = box_targets(result, STEM)
    assert mine.sum() == 10
    assert torch.allclose(targets[:, 1], torch.tensor(0.1)) and targets[:, [0, 2]].abs().sum() == 0


def test_every_option_off_is_ultralytics_exactly():
    torch.manual_seed(0)
    points = anchor_points()
    pd_bboxes = torch.cat([points - torch.rand(len(points), 2) * 40, points + torch.rand(len(points), 2) * 40], 1)[None]
    pd_scores = torch.rand(1, len(points), 3)
    xy = torch.rand(1, 6, 2) * 100
    gt_bboxes = torch.cat([xy, xy + 2 + torch.rand(1, 6, 2) * 30], -1)
    gt_labels = torch.randint(0, 3, (1, 6, 1)).float()
    mask_gt = torch.ones(1, 6, 1)
    inputs = (pd_scores, pd_bboxes, points, gt_labels, gt_bboxes, mask_gt)
    plain = TaskAlignedAssigner(**ASSIGNER_ARGS)(*inputs)
    for ours in (ThinAwareAssigner(**ASSIGNER_ARGS), ThinAwareAssigner(**ASSIGNER_ARGS, target_floor=0.0)):
        for expected, got in zip(plain, ours(*inputs), strict=True):
            assert torch.equal(expected, got)


def test_floor_on_starved_boxes_leaves_ordinary_boxes_as_ultralytics_gives_them():
    plain = assign(TaskAlignedAssigner(**ASSIGNER_ARGS))
    floored = assign(ThinAwareAssigner(**ASSIGNER_ARGS, iou="ciou", target_floor=0.1, floor_on="starved"))
    for expected, got in zip(box_targets(plain, SQUARE), box_targets(floored, SQUARE), strict=True):
        assert torch.equal(expected, got)


def test_plain_iou_keeps_the_ordinary_boxs_anchors():
    plain_anchors, plain_targets = box_targets(assign(TaskAlignedAssigner(**ASSIGNER_ARGS)), SQUARE)
    iou_anchors, iou_targets = box_targets(assign(ThinAwareAssigner(**ASSIGNER_ARGS, iou="iou")), SQUARE)
    assert torch.equal(plain_anchors, iou_anchors)
    # IoU 576 / 4096 = 0.1406 against CIoU 0.1367 at the best anchor: close, not identical
    assert iou_targets.max() == pytest.approx(576 / 4096, rel=1e-3)
    assert plain_targets.max() < iou_targets.max()


def test_floor_on_all_lifts_the_ordinary_boxs_weak_anchors_and_starved_does_not():
    every = box_targets(assign(ThinAwareAssigner(**ASSIGNER_ARGS, iou="iou", target_floor=0.2, floor_on="all")), SQUARE)
    starved = box_targets(
        assign(ThinAwareAssigner(**ASSIGNER_ARGS, iou="iou", target_floor=0.2, floor_on="starved")), SQUARE
    )
    assert every[1][:, 0].min() == pytest.approx(0.2) and starved[1][:, 0].min() < 0.2


def test_floor_class_targets_by_hand():
    # two boxes in one image, four anchors: anchors 0, 1 -> box 0 (best 0.5), anchor 2 -> box 1 (best 1e-5)
    target_scores = torch.tensor([[[0.5, 0.0], [0.02, 0.0], [0.0, 1e-5], [0.0, 0.0]]])
    labels = torch.tensor([[0, 0, 1, 0]])
    fg = torch.tensor([[True, True, True, False]])
    gt_idx = torch.tensor([[0, 0, 1, 0]])
    every = floor_class_targets(target_scores, labels, fg, gt_idx, 2, 0.1, starved_only=False)
    assert torch.allclose(every, torch.tensor([[[0.5, 0.0], [0.1, 0.0], [0.0, 0.1], [0.0, 0.0]]]))
    starved = floor_class_targets(target_scores, labels, fg, gt_idx, 2, 0.1, starved_only=True)
    assert torch.allclose(starved, torch.tensor([[[0.5, 0.0], [0.02, 0.0], [0.0, 0.1], [0.0, 0.0]]]))


def test_starvation_counts_by_hand():
    target_scores = torch.tensor([[[0.5, 0.0], [0.0, 1e-5], [0.0, 0.0]]])
    fg = torch.tensor([[True, True, False]])
    gt_idx = torch.tensor([[0, 1, 0]])
    anchors, best = box_assignment(fg, gt_idx, target_scores, 3)
    assert anchors.tolist() == [[1, 1, 0]] and best[0, 0] == 0.5 and best[0, 2] == 0
    labels = torch.tensor([[[0.0], [1.0], [1.0]]])
    counts = class_counts(labels, torch.ones(1, 3, 1), anchors, best, 2)
    assert counts.tolist() == [[1, 0, 0], [2, 1, 2]]
    assert starvation_table(counts, {0: "head", 1: "stem"}) == {
        "head": {"boxes": 1, "unanchored": 0.0, "starved": 0.0},
        "stem": {"boxes": 2, "unanchored": 0.5, "starved": 1.0},
    }


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="thin-assigner"):
        ThinAwareAssigner(**ASSIGNER_ARGS, iou="giou")


def test_finest_classes_take_anchors_from_the_finest_level_only():
    """A stem widened to 8 px (class 1) is assigned anchors of strides 8 and 16 by Ultralytics; marked finest-only,
    only stride-8 anchors (the first 16 x 16 of the 128 px image), and the square keeps exactly its assignment."""
    plain = assign(ThinAwareAssigner(**ASSIGNER_ARGS), side=8.0, gt_bboxes=WIDENED)
    only = assign(ThinAwareAssigner(**ASSIGNER_ARGS, finest_classes=frozenset({1})), side=8.0, gt_bboxes=WIDENED)
    plain_stem, _ = box_targets(plain, STEM)
    only_stem, _ = box_targets(only, STEM)
    assert plain_stem[FINEST:].any() and plain_stem[:FINEST].any()
    assert only_stem.any() and not only_stem[FINEST:].any()
    assert_same_targets(plain, only, SQUARE)


def test_finest_level_size_splits_the_concatenated_levels():
    from worker.ultralytics_ext.assigner import finest_level_size

    assert finest_level_size(256 + 64 + 16, [8, 16, 32]) == 256
    assert finest_level_size(1600 + 400 + 100 + 25, [4, 8, 16, 32]) == 1600
    with pytest.raises(ValueError, match="do not split into levels"):
        finest_level_size(300, [8, 16, 32])


def test_few_classes_keep_their_best_aligned_anchors_only():
    """The widened stem (class 1) gets several positives from Ultralytics' top-10; cut to its best two, it keeps
    the two anchors Ultralytics aligned best, and the square keeps exactly its assignment."""
    plain = assign(ThinAwareAssigner(**ASSIGNER_ARGS), side=8.0, gt_bboxes=WIDENED)
    few = assign(ThinAwareAssigner(**ASSIGNER_ARGS, few_classes=frozenset({1}), few_topk=2), side=8.0, gt_bboxes=WIDENED)
    plain_stem, plain_scores = box_targets(plain, STEM)
    few_stem, _ = box_targets(few, STEM)
    assert plain_stem.sum() > 2 and few_stem.sum() == 2
    assert not (few_stem & ~plain_stem).any()
    best_two = plain_stem.nonzero().flatten()[plain_scores.max(-1).values.topk(2).indices]
    assert sorted(few_stem.nonzero().flatten().tolist()) == sorted(best_two.tolist())
    assert_same_targets(plain, few, SQUARE)


def test_keep_best_by_hand():
    from worker.ultralytics_ext.assigner import keep_best

    chosen = torch.tensor([[[1, 1, 1, 0], [1, 1, 0, 1]]], dtype=torch.int8)
    metrics = torch.tensor([[[0.2, 0.9, 0.5, 0.0], [0.3, 0.1, 0.0, 0.7]]])
    kept = keep_best(chosen, metrics, torch.tensor([[True, False]]), k=1)
    assert kept.tolist() == [[[0, 1, 0, 0], [1, 1, 0, 1]]]


def test_a_few_topk_outside_the_assigners_topk_is_refused():
    with pytest.raises(ValueError, match="few_topk"):
        ThinAwareAssigner(**ASSIGNER_ARGS, few_classes=frozenset({1}), few_topk=11)
    with pytest.raises(ValueError, match="few_topk"):
        ThinAwareAssigner(**ASSIGNER_ARGS, few_classes=frozenset({1}))


def test_coarse_classes_take_anchors_from_the_coarser_levels_only():
    """The 24 x 24 square (class 0) takes stride-8 and coarser anchors from Ultralytics; marked coarse, only coarser
    ones, and the stem's assignment is exactly as before."""
    plain = assign(ThinAwareAssigner(**ASSIGNER_ARGS), side=24.0, gt_bboxes=WIDENED)
    coarse = assign(ThinAwareAssigner(**ASSIGNER_ARGS, coarse_classes=frozenset({0})), side=24.0, gt_bboxes=WIDENED)
    plain_square, _ = box_targets(plain, SQUARE)
    coarse_square, _ = box_targets(coarse, SQUARE)
    assert plain_square[:FINEST].any() and coarse_square.any() and not coarse_square[:FINEST].any()
    assert_same_targets(plain, coarse, STEM)


def test_a_coarse_box_without_coarse_candidates_keeps_its_finest_ones():
    """A 16 x 16 square spanning x 24..40 holds no stride-16 centre (8, 24, 40, ...: only on its edges) and no
    stride-32 one (16, 48, ...), so as a coarse class it would have no candidate at all: it keeps its stride-8
    anchors, as Ultralytics gives them."""
    boxes = torch.tensor([[[64.0, 20.0, 65.0, 100.0], [24.0, 24.0, 40.0, 40.0]]])
    plain = assign(ThinAwareAssigner(**ASSIGNER_ARGS), side=16.0, gt_bboxes=boxes)
    coarse = assign(ThinAwareAssigner(**ASSIGNER_ARGS, coarse_classes=frozenset({0})), side=16.0, gt_bboxes=boxes)
    coarse_square, _ = box_targets(coarse, SQUARE)
    assert coarse_square.any() and not coarse_square[FINEST:].any()
    assert_same_targets(plain, coarse, SQUARE)
