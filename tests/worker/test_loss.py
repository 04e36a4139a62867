"""StagerunDetectionLoss against Ultralytics' v8DetectionLoss on the same model, predictions and batch."""

from __future__ import annotations

import copy

import pytest
import torch
from ultralytics.cfg import get_cfg
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.loss import v8DetectionLoss

from worker.ultralytics_ext.loss import Assignment, LossSettings, StagerunDetectionLoss
from worker.ultralytics_ext.loss_math import focal_bce

NC = 3


@pytest.fixture(scope="module")
def model() -> DetectionModel:
    torch.manual_seed(0)
    built = DetectionModel("yolov8n.yaml", nc=NC, verbose=False)
    built.args = get_cfg()
    return built.train()


@pytest.fixture(scope="module")
def batch() -> dict:
    """Two 128 px images: a 12 px bar (area 0.0088) and a square (0.16) in the first, a disc (0.09) in the second."""
    return {
        "img": torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1)),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
        "cls": torch.tensor([[2.0], [0.0], [1.0]]),
        "bboxes": torch.tensor([[0.3, 0.5, 12 / 128, 12 / 128], [0.7, 0.4, 0.4, 0.4], [0.5, 0.5, 0.3, 0.3]]),
    }


@pytest.fixture(scope="module")
def preds(model: DetectionModel, batch: dict) -> dict:
    with torch.no_grad():
        return model(batch["img"])


def losses(criterion, preds: dict, batch: dict) -> torch.Tensor:
    total, _ = criterion(copy.deepcopy(preds), batch)
    return total / batch["img"].shape[0]  # box, cls, dfl, each already multiplied by its gain


def test_neutral_settings_reproduce_ultralytics_loss(model, preds, batch) -> None:
    plain = losses(v8DetectionLoss(model), preds, batch)
    for settings in (LossSettings(), LossSettings(class_weights=[1.0] * NC, gamma=0.0, small_gain=1.0)):
        torch.testing.assert_close(
            losses(StagerunDetectionLoss(model, settings), preds, batch), plain, rtol=1e-6, atol=1e-7
        )
    assert plain.gt(0).all()


def test_class_weights_match_ultralytics_own_class_weighting(model, preds, batch) -> None:
    weights = [1.0, 4.0, 8.0]
    ours = losses(StagerunDetectionLoss(model, LossSettings(class_weights=weights)), preds, batch)
    reference_model = copy.deepcopy(model)
    reference_model.class_weights = torch.tensor(weights)
    torch.testing.assert_close(ours, losses(v8DetectionLoss(reference_model), preds, batch), rtol=1e-6, atol=1e-7)
    plain = losses(v8DetectionLoss(model), preds, batch)
    doubled = losses(StagerunDetectionLoss(model, LossSettings(class_weights=[2.0] * NC)), preds, batch)
    torch.testing.assert_close(doubled, plain * torch.tensor([1.0, 2.0, 1.0]), rtol=1e-6, atol=1e-7)


def test_class_weights_multiply_with_cls_pw_weights(model) -> None:
    with_cls_pw = copy.deepcopy(model)
    with_cls_pw.class_weights = torch.tensor([0.5, 1.0, 1.5])
    criterion = StagerunDetectionLoss(with_cls_pw, LossSettings(class_weights=[4.0, 1.0, 2.0]))
    assert criterion.used_class_weights() == pytest.approx([2.0, 1.0, 3.0])
    with pytest.raises(ValueError, match="2 class weights for a model with 3 classes"):
        StagerunDetectionLoss(model, LossSettings(class_weights=[1.0, 2.0]))


def test_focal_term_keeps_ultralytics_reduction(model, preds, batch) -> None:
    """cls loss = sum over anchors and classes of w_c * focal_bce / target-score sum * hyp.cls."""
    seen: list[Assignment] = []
    weights = torch.tensor([1.0, 4.0, 8.0])
    criterion = StagerunDetectionLoss(model, LossSettings(class_weights=weights.tolist(), gamma=2.0, alpha=0.25))
    criterion.add_assignment_observer(seen.append)
    ours = losses(criterion, preds, batch)
    (assignment,) = seen
    scores = preds["scores"].permute(0, 2, 1)
    elementwise = focal_bce(scores, assignment.target_scores, gamma=2.0, alpha=0.25) * weights
    expected_cls = elementwise.sum() / assignment.target_scores.sum().clamp(min=1) * model.args.cls
    torch.testing.assert_close(ours[1], expected_cls, rtol=1e-5, atol=1e-7)
    plain = losses(v8DetectionLoss(model), preds, batch)
    torch.testing.assert_close(ours[[0, 2]], plain[[0, 2]])  # box and DFL terms untouched
    assert ours[1] < plain[1]  # the modulation only shrinks the term, here more than the weights raise it


def test_small_object_gain_scales_box_and_dfl_of_small_boxes_only(model, preds, batch) -> None:
    def with_gain(gain: float, threshold: float) -> torch.Tensor:
        settings = LossSettings(small_gain=gain, small_threshold=threshold, small_measure="area")
        return losses(StagerunDetectionLoss(model, settings), preds, batch)

    plain = losses(v8DetectionLoss(model), preds, batch)
    everything_small = with_gain(3.0, 1.1)
    torch.testing.assert_close(everything_small, plain * torch.tensor([3.0, 1.0, 3.0]), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(with_gain(3.0, 1e-6), plain)  # no box is that small
    # The bar (area 0.0088) and the disc (0.09) are under 0.1, the square (0.16) is not: the small boxes'
    # share of the box/DFL loss grows linearly with the gain, the square's stays.
    small_share = with_gain(2.0, 0.1) - plain
    assert (small_share[[0, 2]] > 0.1 * plain[[0, 2]]).all() and small_share[1] == 0
    assert (small_share[[0, 2]] < 0.9 * (everything_small - plain)[[0, 2]] / 2).all()
    torch.testing.assert_close(with_gain(3.0, 0.1) - plain, 2 * small_share, rtol=1e-5, atol=1e-6)


def test_assigner_hook_and_observer(model, preds, batch) -> None:
    calls: list[int] = []

    class CountingAssigner(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, *args, **kwargs):
            calls.append(1)
            return self.inner(*args, **kwargs)

    class CustomLoss(StagerunDetectionLoss):
        def make_assigner(self):
            return CountingAssigner(super().make_assigner())

    seen: list[Assignment] = []
    criterion = CustomLoss(model, LossSettings())
    criterion.add_assignment_observer(seen.append)
    torch.testing.assert_close(losses(criterion, preds, batch), losses(v8DetectionLoss(model), preds, batch))
    assert calls == [1] and len(seen) == 1
    assignment = seen[0]
    assert assignment.gt_bboxes.shape == (2, 2, 4) and assignment.mask_gt.sum() == 3
    assert assignment.fg_mask.shape == assignment.target_scores.shape[:2] == assignment.target_gt_idx.shape
    assert assignment.fg_mask.any() and assignment.pred_scores.shape == assignment.target_scores.shape
    assert StagerunDetectionLoss.make_assigner(criterion) is criterion.default_assigner is criterion.task_assigner.inner
    explicit = StagerunDetectionLoss(model, LossSettings(), assigner=CountingAssigner(criterion.task_assigner.inner))
    losses(explicit, preds, batch)
    assert calls == [1, 1]
    copy.deepcopy(criterion)  # Ultralytics deep-copies the model (EMA) with its criterion


def test_box_class_weights_scale_each_class_box_and_dfl_terms_only(model, preds, batch) -> None:
    """Every class at weight w scales box and DFL by w; one class at 0 removes exactly its anchors' share."""
    plain = losses(v8DetectionLoss(model), preds, batch)
    halved = losses(StagerunDetectionLoss(model, LossSettings(box_class_weights=[0.5] * NC)), preds, batch)
    torch.testing.assert_close(halved, plain * torch.tensor([0.5, 1.0, 0.5]), rtol=1e-6, atol=1e-7)
    single = {
        "img": batch["img"][1:],
        "batch_idx": torch.tensor([0.0]),
        "cls": batch["cls"][2:],
        "bboxes": batch["bboxes"][2:],
    }
    with torch.no_grad():
        single_preds = model(single["img"])
    only_disc = losses(v8DetectionLoss(model), single_preds, single)
    disc_off = losses(
        StagerunDetectionLoss(model, LossSettings(box_class_weights=[1.0, 0.0, 1.0])), single_preds, single
    )
    assert only_disc[[0, 2]].gt(0).all()
    torch.testing.assert_close(disc_off, only_disc * torch.tensor([0.0, 1.0, 0.0]), rtol=1e-6, atol=1e-7)
    other_off = losses(
        StagerunDetectionLoss(model, LossSettings(box_class_weights=[0.0, 1.0, 0.0])), single_preds, single
    )
    torch.testing.assert_close(other_off, only_disc)
    with pytest.raises(ValueError, match="2 box class weights for a model with 3 classes"):
        StagerunDetectionLoss(model, LossSettings(box_class_weights=[1.0, 2.0]))


def covering(model: DetectionModel) -> DetectionModel:
    """A copy whose box branch predicts, at every anchor, a square one stride from the anchor on each side (DFL
    bin 1), so that every ground-truth box is well aligned with some anchor's prediction whatever the random
    features (with the fixture's random boxes a small box's target may be ~0, depending on the thread count)."""
    wide = copy.deepcopy(model)
    head = wide.model[-1]
    for branch in head.cv2:
        torch.nn.init.zeros_(branch[-1].weight)
        with torch.no_grad():
            branch[-1].bias.zero_()
            branch[-1].bias.view(4, head.reg_max)[:, 1] = 10.0
    return wide


def test_narrowed_iou_scores_the_thin_box_and_leaves_dfl_and_classes_alone(model, batch) -> None:
    model = covering(model)
    with torch.no_grad():
        preds = model(batch["img"])
    pads = [(0.0, 0.0), (0.0, 0.0), (6.0, 0.0)]  # the 12 px bar (class 2) is trained as if widened by 6 px
    widened = losses(StagerunDetectionLoss(model, LossSettings(box_pad_px=pads)), preds, batch)
    narrowed = losses(StagerunDetectionLoss(model, LossSettings(box_pad_px=pads, narrowed_iou=True)), preds, batch)
    torch.testing.assert_close(narrowed[1:], widened[1:])
    assert narrowed[0] != widened[0]
    unpadded = [(0.0, 0.0)] * NC
    no_pad = losses(StagerunDetectionLoss(model, LossSettings(box_pad_px=unpadded, narrowed_iou=True)), preds, batch)
    torch.testing.assert_close(no_pad, losses(v8DetectionLoss(model), preds, batch), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="narrowed IoU term needs box pads"):
        StagerunDetectionLoss(model, LossSettings(narrowed_iou=True))


def test_narrowed_iou_is_the_ciou_of_the_boxes_as_evaluation_narrows_them() -> None:
    """A 1 px stem widened to 8 px, predicted 0.4 px to the right, on a stride-8 anchor (grid units = px / 8):
    the widened IoU barely notices, the narrowed term is Ultralytics' CIoU of the two 1 px boxes."""
    from ultralytics.utils.metrics import bbox_iou

    from worker.ultralytics_ext.loss import WeightedBboxLoss

    stride = torch.tensor([[8.0], [16.0]])
    target_px = torch.tensor([[20.0, 10.0, 28.0, 50.0], [0.0, 0.0, 32.0, 32.0]])  # a widened stem, a square
    pred_px = target_px + torch.tensor([[0.4, 0.0, 0.4, 0.0], [1.0, 1.0, 1.0, 1.0]])
    scores = torch.tensor([[[0.0, 0.7], [0.9, 0.0]]])  # anchor 0: class 1 (stem), anchor 1: class 0
    fg = torch.tensor([[True, True]])
    dist = torch.zeros(1, 2, 64)
    anchors = torch.tensor([[3.0, 3.0], [1.0, 1.0]])
    pads = torch.tensor([[0.0, 0.0], [7.0, 0.0]])
    args = (dist, (pred_px / stride).unsqueeze(0), anchors, (target_px / stride).unsqueeze(0), scores)
    rest = (scores.sum(), fg, torch.tensor([64.0, 64.0]), stride)
    narrowed, dfl_narrowed = WeightedBboxLoss(16, narrow_px=pads)(*args, *rest)
    widened, dfl_widened = WeightedBboxLoss(16)(*args, *rest)
    thin = torch.tensor([[23.5, 10.0, 24.5, 50.0], [23.9, 10.0, 24.9, 50.0]]) / 8
    stem_term = 1 - bbox_iou(thin[1:], thin[:1], xywh=False, CIoU=True)
    square_term = 1 - bbox_iou(pred_px[1:] / 16, target_px[1:] / 16, xywh=False, CIoU=True)
    torch.testing.assert_close(narrowed, ((0.7 * stem_term + 0.9 * square_term) / 1.6).squeeze())
    widened_stem_term = 1 - bbox_iou(pred_px[:1] / 8, target_px[:1] / 8, xywh=False, CIoU=True)
    torch.testing.assert_close(widened, ((0.7 * widened_stem_term + 0.9 * square_term) / 1.6).squeeze())
    assert float(stem_term) > 0.5 > 0.1 > float(widened_stem_term)
    torch.testing.assert_close(dfl_narrowed, dfl_widened)


def _gradients(model: DetectionModel, settings: LossSettings, batch: dict, **gains) -> dict[str, torch.Tensor]:
    """Every parameter's gradient of one training loss on ``batch`` (a fresh copy of the model; ``gains``
    override the hyperparameters' box/dfl gains)."""
    trained = copy.deepcopy(model)
    for name, value in gains.items():
        setattr(trained.args, name, value)
    total, _ = StagerunDetectionLoss(trained, settings)(trained(batch["img"]), batch)
    total.sum().backward()
    return {n: torch.zeros_like(p) if p.grad is None else p.grad.clone() for n, p in trained.named_parameters()}


def test_head_box_gradient_trains_the_box_branch_only() -> None:
    """Images whose only boxes are a widened class (2): routed to the head, their box and DFL gradients reach the
    box branch exactly as without routing, and the backbone and neck get exactly what they get with no box
    loss at all; the loss itself does not change."""
    torch.manual_seed(0)
    built = DetectionModel("yolov8n.yaml", nc=NC, verbose=False)
    built.args = get_cfg()
    built.train()
    bars = {
        "img": torch.rand(2, 3, 160, 160, generator=torch.Generator().manual_seed(2)),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
        "cls": torch.tensor([[2.0], [2.0], [2.0]]),
        "bboxes": torch.tensor([[0.3, 0.5, 0.01, 0.5], [0.5, 0.5, 0.01, 0.3], [0.6, 0.4, 0.01, 0.6]]),
    }
    pads = [(0.0, 0.0), (0.0, 0.0), (6.0, 0.0)]
    routed = _gradients(built, LossSettings(box_pad_px=pads, head_box_classes=(2,)), bars)
    through = _gradients(built, LossSettings(box_pad_px=pads), bars)
    no_box = _gradients(built, LossSettings(box_pad_px=pads), bars, box=0.0, dfl=0.0)
    head = len(built.model) - 1
    box_branch = [n for n in routed if n.startswith(f"model.{head}.cv2.")]
    trunk = [n for n in routed if not n.startswith(f"model.{head}.")]
    assert box_branch and trunk
    for name in box_branch:
        torch.testing.assert_close(routed[name], through[name])
    for name in trunk:
        torch.testing.assert_close(routed[name], no_box[name])
    assert any(not torch.allclose(routed[n], through[n]) for n in trunk)  # the box loss did reach the trunk before
    with torch.no_grad():
        preds = built(bars["img"])
    routed_loss = losses(StagerunDetectionLoss(built, LossSettings(box_pad_px=pads, head_box_classes=(2,))), preds, bars)
    torch.testing.assert_close(routed_loss, losses(StagerunDetectionLoss(built, LossSettings(box_pad_px=pads)), preds, bars))


def test_head_box_gradient_leaves_the_heads_gradients_and_the_running_statistics_alone(model, batch) -> None:
    """In the fixture batch the widened class (2) shares images with classes 0 and 1: routing it changes no
    gradient of the head (only where the box branch's input gradient goes), and the box branch's second pass
    moves no BatchNorm running statistic a second time."""
    pads = [(0.0, 0.0), (0.0, 0.0), (6.0, 0.0)]
    routed_model = copy.deepcopy(model)
    criterion = StagerunDetectionLoss(routed_model, LossSettings(box_pad_px=pads, head_box_classes=(2,)))
    plain_model = copy.deepcopy(model)
    plain = StagerunDetectionLoss(plain_model, LossSettings(box_pad_px=pads))
    criterion(routed_model(batch["img"]), batch)[0].sum().backward()
    plain(plain_model(batch["img"]), batch)[0].sum().backward()
    for (name, a), b in zip(routed_model.state_dict().items(), plain_model.state_dict().values(), strict=True):
        if "running" in name:
            torch.testing.assert_close(a, b, msg=name)
    head = len(model.model) - 1
    for (name, a), b in zip(routed_model.named_parameters(), plain_model.parameters(), strict=True):
        if name.startswith(f"model.{head}."):
            torch.testing.assert_close(a.grad, b.grad, msg=name)
