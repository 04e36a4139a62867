"""Thin boxes through augmentation: the keep rule and widening by hand, then box counts before and after
the real Ultralytics augmentation pipeline, plain against stagerun's, on 1 and 2 px wide boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ultralytics.data.augment import CopyPaste, RandomPerspective

from shared.stage_kinds.training_options import ThinBoxes
from tests.worker.yolo_datasets import plain_dataset, sample, stagerun_dataset, training_args, write_dataset
from worker.ultralytics_ext.dataset import TALLY_KEY, DataOptions, contains, replace_perspectives
from worker.ultralytics_ext.thin_boxes import CountingPerspective, ThinBoxPerspective, thin_box_candidates, widen_boxes


def test_keep_rule_by_hand() -> None:
    # columns: a 0.4 px wide stem, a box pushed out of the frame (clipped to zero width), a 0.5 x 600 px
    # line (aspect 600 once widened to 1 px), a 0.5 x 2000 px line (2000 > 1000), a box 5% visible
    before = np.array([[10, 10, 10.4, 30], [0, 0, 8, 8], [0, 0, 0.5, 600], [0, 0, 0.5, 2000], [0, 0, 20, 20]]).T
    after = np.array([[10, 10, 10.4, 30], [0, 0, 0, 8], [0, 0, 0.5, 600], [0, 0, 0.5, 2000], [0, 0, 1, 20]]).T
    kept = thin_box_candidates(before, after, min_box_px=1.0, max_aspect_ratio=1000.0, area_thr=0.1)
    assert kept.tolist() == [True, False, True, False, False]
    assert RandomPerspective.box_candidates(before, after).tolist() == [False] * 5  # Ultralytics drops them all


def test_widening_by_hand_stays_inside_the_image() -> None:
    boxes = np.array([[10.0, 5.0, 10.4, 25.0], [0.0, 0.0, 0.2, 0.3], [63.9, 10.0, 64.0, 10.5], [5, 5, 9, 9]])
    widened = widen_boxes(boxes, 1.0, 64, 32)
    expected = [[9.7, 5.0, 10.7, 25.0], [0.0, 0.0, 1.0, 1.0], [63.0, 9.75, 64.0, 10.75], [5, 5, 9, 9]]
    assert widened.ravel().tolist() == pytest.approx(np.ravel(expected).tolist())
    assert widen_boxes(boxes[:1], 2.0, 64, 32)[0].tolist() == pytest.approx([9.2, 5.0, 11.2, 25.0])


def stems_dataset(root: Path, count: int = 20) -> Path:
    """64 x 64 images, each with two 1 px and one 2 px wide, 20 px high bars near the centre (so that the
    default 0.5-1.5 scale and 0.1 translation never move them out of the frame)."""
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        pixels = np.full((64, 64, 3), 230, dtype=np.uint8)
        boxes = []
        for class_id, width in ((0, 1), (0, 1), (1, 2)):
            x, y = int(rng.integers(26, 37)), int(rng.integers(22, 24))
            pixels[y : y + 20, x : x + width] = 0
            boxes.append((class_id, x, y, x + width, y + 20))
        images.append((pixels, boxes))
    return write_dataset(root, images, ["stem", "barline"])


def counts(dataset, seeds: range) -> tuple[np.ndarray, list]:
    out = np.zeros(2, dtype=int)
    samples = []
    for seed in seeds:
        item = sample(dataset, seed % len(dataset), seed)
        out += np.bincount(item["cls"].reshape(-1).int().numpy(), minlength=2)
        samples.append(item)
    return out, samples


def test_plain_ultralytics_drops_thin_boxes_and_ours_keeps_them(tmp_path: Path) -> None:
    images = stems_dataset(tmp_path)
    no_mosaic = {"mosaic": 0.0, "fliplr": 0.0}
    plain = plain_dataset(images, ["stem", "barline"], **no_mosaic)
    ours = stagerun_dataset(images, ["stem", "barline"], DataOptions(thin_boxes=ThinBoxes()), **no_mosaic)
    counting = stagerun_dataset(images, ["stem", "barline"], DataOptions(thin_boxes=None), **no_mosaic)
    before = np.array([40, 20])  # 20 images: 40 stems 1 px wide, 20 barlines 2 px wide

    plain_counts, plain_samples = counts(plain, range(20))
    our_counts, our_samples = counts(ours, range(20))
    counting_counts, counting_samples = counts(counting, range(20))

    # measured with these seeds (Ultralytics 8.4.190): plain 40 -> 0 stems, 20 -> 9 barlines; ours 40 and 20
    assert plain_counts[0] == 0  # 1 px scaled by 0.5-1.5 is never over 2 px: every stem dropped
    assert 0 < plain_counts[1] < 20  # a 2 px barline survives only when scaled up
    assert our_counts.tolist() == before.tolist()
    # ours widens what scaling shrank below 1 px: every box is at least 1 px of the 64 px image
    widths = np.concatenate([s["bboxes"][:, 2].numpy() for s in our_samples])
    assert widths.min() >= 1 / 64 - 1e-6
    # thin_boxes: null keeps Ultralytics' rule exactly and counts what it removed
    assert counting_counts.tolist() == plain_counts.tolist()
    for ours_item, plain_item in zip(counting_samples, plain_samples, strict=True):
        assert np.array_equal(ours_item["bboxes"].numpy(), plain_item["bboxes"].numpy())
    removed = sum(np.array([s[TALLY_KEY]["removed"].get(c, 0) for c in (0, 1)]) for s in counting_samples)
    assert (removed + counting_counts).tolist() == before.tolist()
    assert all(not s[TALLY_KEY]["removed"] for s in our_samples)


def test_with_mosaic_ours_keeps_every_stem_in_the_frame(tmp_path: Path) -> None:
    images = stems_dataset(tmp_path)
    plain = plain_dataset(images, ["stem", "barline"])
    ours = stagerun_dataset(images, ["stem", "barline"], DataOptions(thin_boxes=ThinBoxes()))
    plain_counts, _ = counts(plain, range(40))
    our_counts, our_samples = counts(ours, range(40))
    kept = sum(sum(s[TALLY_KEY]["kept"].get(c, 0) for c in (0, 1)) for s in our_samples)
    assert plain_counts[0] == 0 and our_counts[0] > 20  # measured: plain 0 stems, 18 barlines; ours 136 and 72
    assert our_counts.sum() == kept  # what left the affine step is what came out of the pipeline


def test_every_affine_step_is_replaced_also_inside_copy_paste_and_after_close_mosaic(tmp_path: Path) -> None:
    images = stems_dataset(tmp_path, count=4)
    ours = stagerun_dataset(
        images, ["stem", "barline"], DataOptions(thin_boxes=ThinBoxes()), copy_paste=0.5, copy_paste_mode="mixup"
    )
    pre_transform = ours.transforms.transforms[0]
    affine = pre_transform.transforms[1]
    inner = next(t for t in pre_transform.transforms if isinstance(t, CopyPaste)).pre_transform.transforms[1]
    assert type(affine) is ThinBoxPerspective and inner is affine
    assert affine.min_box_px == 1.0 and affine.scale == 0.5 and affine.size == (64, 64)
    ours.close_mosaic(training_args(copy_paste_mode="mixup"))  # what the trainer does at close_mosaic
    assert contains(ours.transforms, ThinBoxPerspective)
    assert replace_perspectives(ours.transforms, lambda plain: plain) == []  # no plain affine step left


def test_counting_perspective_copies_every_parameter() -> None:
    plain = RandomPerspective(degrees=3.0, translate=0.2, scale=0.3, shear=1.0, perspective=0.0001, size=(96, 64))
    copy = CountingPerspective.replacing(plain, tally=None)
    assert {k: v for k, v in vars(copy).items() if k in vars(plain)} == vars(plain)
