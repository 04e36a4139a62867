"""widen_thin's arithmetic: pads from the profile, widening in the loss targets, exact narrowing."""

from __future__ import annotations

import pytest
import torch

from shared.datasets.profile import build_profile
from shared.datasets.validate import LabeledImage
from shared.errors import InvalidSpec
from shared.stage_kinds.training_options import WidenThin
from worker.ultralytics_ext.widening import (
    box_weights,
    model_pad,
    narrow_boxes,
    narrowing_px,
    pad_pixels,
    pads_of_long_side,
    stored_pad,
    widen_boxes,
)

NAMES = ["blob", "stem", "hline"]


def thin_profile() -> dict:
    boxes = [(0, 0.5, 0.5, 30 / 320, 30 / 320), (1, 0.5, 0.5, 1.6 / 320, 40 / 320), (2, 0.5, 0.5, 60 / 320, 2 / 320)]
    return build_profile(NAMES, [LabeledImage("train", "a.png", 320, 160, boxes)])


def test_pads_bring_the_thin_side_of_listed_classes_to_the_target() -> None:
    pads = pads_of_long_side(WidenThin(target_px=8, classes=["stem", "hline"]), thin_profile(), NAMES, imgsz=320)
    assert pads[0] == (0.0, 0.0)
    assert pads[1][0] * 320 == pytest.approx(8 - 1.6, abs=0.05) and pads[1][1] == 0.0
    assert pads[2][0] == 0.0 and pads[2][1] * 320 == pytest.approx(8 - 1.0, abs=0.05)  # 2 px of a 160 px height
    at_640 = pads_of_long_side(WidenThin(target_px=8, classes=["stem"]), thin_profile(), NAMES, imgsz=640)
    assert at_640[1][0] * 640 == pytest.approx(8 - 3.2, abs=0.1)  # the stem is 3.2 px at imgsz 640
    with pytest.raises(InvalidSpec) as error:
        pads_of_long_side(WidenThin(classes=["nope"]), thin_profile(), NAMES, imgsz=320)
    assert error.value.field == "widen_thin.classes.0"


def test_narrowing_undoes_widening_exactly_per_class() -> None:
    boxes = torch.tensor([[10.0, 10.0, 11.2, 50.0], [20.0, 20.0, 40.0, 40.0], [5.0, 5.0, 6.0, 9.0]])
    classes = torch.tensor([1.0, 0.0, 1.0])
    pads = torch.tensor([[0.0, 0.0], [6.8, 0.0]])
    widened = widen_boxes(boxes, classes, pads)
    assert widened[0].tolist() == pytest.approx([6.6, 10.0, 14.6, 50.0])
    assert torch.equal(widened[1], boxes[1])
    assert narrow_boxes(widened, classes, pads) == pytest.approx(boxes, abs=1e-5)


def test_a_prediction_narrower_than_its_pad_keeps_a_sliver_at_its_centre() -> None:
    narrowed = narrow_boxes(torch.tensor([[10.0, 0.0, 14.0, 30.0]]), torch.tensor([0.0]), torch.tensor([[6.0, 0.0]]))
    assert narrowed[0].tolist() == pytest.approx([11.95, 0.0, 12.05, 30.0])


def test_the_stored_pad_is_builtins_only_and_found_on_wrapped_models() -> None:
    pad = stored_pad(NAMES, [(0.0, 0.0), (0.02, 0.0), (0.0, 0.0)], target_px=8, imgsz=320)
    assert all(type(v) in (int, float, str, list) for v in pad.values())

    class Inner:
        stagerun_box_pad = pad

    class Wrapper:
        model = Inner()

    assert model_pad(Inner()) is pad and model_pad(Wrapper()) is pad and model_pad(object()) is None
    assert pad_pixels(pad, 640)[1].tolist() == pytest.approx([12.8, 0.0])
    assert narrowing_px(pad, 320) == {"stem": [6.4, 0.0]}


def test_the_loss_widens_real_targets_and_leaves_padding_rows_alone() -> None:
    from ultralytics.nn.tasks import DetectionModel

    from worker.ultralytics_ext.loss import LossSettings, StagerunDetectionLoss

    model = DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    model.args = type("Args", (), {"box": 7.5, "cls": 0.5, "dfl": 1.5})()
    criterion = StagerunDetectionLoss(model, LossSettings(box_pad_px=[(0, 0), (6.0, 0), (0, 0)]))
    # image 0: a stem and a blob; image 1: one blob (so it gets one padding row)
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.01, 0.5], [0, 0, 0.25, 0.25, 0.1, 0.1], [1, 0, 0.5, 0.5, 0.2, 0.2]])
    out = criterion.preprocess(targets, 2, scale_tensor=torch.tensor([100.0, 100.0, 100.0, 100.0]))
    assert out[0, 0, 1:].tolist() == pytest.approx([46.5, 25.0, 53.5, 75.0])  # 1 px wide, widened by 6
    assert out[0, 1, 1:].tolist() == pytest.approx([20.0, 20.0, 30.0, 30.0])
    assert out[1, 1].abs().sum() == 0  # the padding row stays all zero, so the loss still masks it out


def test_box_weights_give_widened_classes_their_unwidened_share() -> None:
    widen = WidenThin(target_px=8, classes=["stem", "hline"])
    pads = pads_of_long_side(widen, thin_profile(), NAMES, imgsz=320)
    pad = stored_pad(NAMES, pads, 8, 320)
    balanced = box_weights(pad, "balanced")
    assert balanced[0] == 1.0
    assert balanced[1] == pytest.approx(1.6 / 8, abs=0.01)  # a 1.6 px stem widened to 8 px: 5x the anchors
    assert balanced[2] == pytest.approx(1.0 / 8, abs=0.01)
    assert box_weights(pad, 0.4) == [1.0, 0.4, 0.4]
    assert box_weights(stored_pad(NAMES, [(0.0, 0.0), (8 / 320, 0.0), (0.0, 0.0)], 8, 320), "balanced")[1] == 0.01


def test_box_weight_is_a_share_or_balanced() -> None:
    assert WidenThin(box_weight=1).box_weight == 1.0
    assert WidenThin(box_weight="balanced").box_weight == "balanced"
    for bad in (0, 1.5, -0.2, "half"):
        with pytest.raises(ValueError):
            WidenThin(box_weight=bad)


def test_box_iou_is_widened_or_narrowed() -> None:
    assert WidenThin().box_iou == "widened"
    assert WidenThin(box_iou="narrowed").box_iou == "narrowed"
    with pytest.raises(ValueError):
        WidenThin(box_iou="thin")


def test_shrink_boxes_keeps_a_sliver_and_leaves_unshrunk_sides() -> None:
    from worker.ultralytics_ext.widening import shrink_boxes

    boxes = torch.tensor([[10.0, 0.0, 18.0, 40.0], [0.0, 0.0, 4.0, 4.0]])
    shrunk = shrink_boxes(boxes, torch.tensor([[7.0, 0.0], [6.0, 0.0]]), min_half=0.1)
    assert shrunk[0].tolist() == pytest.approx([13.5, 0.0, 14.5, 40.0])
    assert shrunk[1].tolist() == pytest.approx([1.9, 0.0, 2.1, 4.0])
