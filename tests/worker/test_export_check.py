"""worker/export_check.py: a real ONNX export of a tiny trained model, onnxruntime beside PyTorch on the same
inputs (raw head outputs), both models' mAP50, and a wrong ONNX model that the comparison catches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from ultralytics import YOLO

from client.synthetic import make_dataset
from tests.worker.yolo_datasets import TINY_TRAIN
from worker.export_check import _end2end_diffs, compare_outputs, export_onnx, map50_both

IMGSZ = 64

BOX_TOLERANCE_PX = 1e-2
SCORE_TOLERANCE = 1e-3
"""FP32 onnxruntime against FP32 PyTorch on the CPU: measured 6.1e-5 px and 8.8e-8 (float rounding only)."""


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny"), train=8, val=4, size=IMGSZ, seed=1)


@pytest.fixture(scope="module")
def weights(data_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    yolo = YOLO("yolov8n.yaml")
    yolo.train(data=str(data_yaml), project=str(tmp_path_factory.mktemp("runs")), name="tiny", exist_ok=True,
               **{**TINY_TRAIN, "imgsz": IMGSZ, "val": False})
    return Path(yolo.trainer.best)


@pytest.fixture(scope="module")
def exported(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(str(weights), tmp_path_factory.mktemp("export"), IMGSZ, None, False, False, True, "cpu")


def val_images(data_yaml: Path) -> list[Path]:
    return sorted((data_yaml.parent / "images" / "val").glob("*.png"))


@pytest.mark.slow
def test_export_writes_a_model_onnxruntime_loads_and_nothing_beside_the_weights(weights, exported) -> None:
    assert exported.name == "model.onnx"
    assert [p.name for p in exported.parent.iterdir()] == ["model.onnx"]  # the staging copy is gone
    assert not list(weights.parent.glob("*.onnx"))
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, IMGSZ, IMGSZ]
    assert session.get_inputs()[0].type == "tensor(float)"


@pytest.mark.slow
def test_onnx_outputs_match_pytorch_on_the_same_inputs(weights, exported, data_yaml) -> None:
    check = compare_outputs(str(weights), exported, val_images(data_yaml), IMGSZ, "cpu")
    assert check["images"] == 4
    assert check["providers"] == ["CPUExecutionProvider"]
    assert 0 <= check["max_box_diff_px"] < BOX_TOLERANCE_PX
    assert 0 <= check["max_score_diff"] < SCORE_TOLERANCE
    assert check["onnx_ms_per_image"] > 0 and check["torch_ms_per_image"] > 0


@pytest.mark.slow
def test_map50_of_both_models_agree_on_the_first_images(weights, exported, data_yaml) -> None:
    """A model trained for one epoch finds nothing yet (both mAP50 are 0 here): this checks the plumbing, the
    first-N list file and that both numbers come from the same images; the outputs test checks the numbers."""
    accuracy = map50_both(str(weights), exported, data_yaml, "val", IMGSZ, 4, "cpu", 3)
    assert accuracy["images"] == 3
    assert 0.0 <= accuracy["torch_mAP50"] <= 1.0 and 0.0 <= accuracy["onnx_mAP50"] <= 1.0
    assert abs(accuracy["torch_mAP50"] - accuracy["onnx_mAP50"]) <= 0.01
    assert map50_both(str(weights), exported, data_yaml, "val", IMGSZ, 4, "cpu", None)["images"] == 4


@pytest.mark.slow
def test_an_onnx_model_of_different_weights_is_caught(weights, data_yaml, tmp_path) -> None:
    other = YOLO(str(weights))
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in other.model.parameters():  # same architecture, numbers off by about 10 %
            parameter.mul_(1 + 0.1 * torch.randn_like(parameter))
    other.save(tmp_path / "other.pt")
    wrong = export_onnx(str(tmp_path / "other.pt"), tmp_path / "export", IMGSZ, None, False, False, False, "cpu")
    check = compare_outputs(str(weights), wrong, val_images(data_yaml), IMGSZ, "cpu")
    assert check["max_box_diff_px"] > 1.0 or check["max_score_diff"] > 0.05


@pytest.mark.slow
def test_a_dual_head_model_is_compared_in_the_head_mode_it_was_exported_in(data_yaml, tmp_path) -> None:
    """YOLO26 has two heads: Ultralytics exports (and predicts with) the one-to-many head by default, and the
    NMS-free one-to-one head with nms=False, whose output is the top max_det detections. Untrained, their scores
    nearly tie, which is where a row-by-row comparison would report a reordering as a difference."""
    YOLO("yolo26n.yaml").save(tmp_path / "e2e.pt")
    weights, images = str(tmp_path / "e2e.pt"), val_images(data_yaml)[:2]
    plain = export_onnx(weights, tmp_path / "export", IMGSZ, None, False, False, True, "cpu")
    assert onnxruntime.InferenceSession(str(plain)).get_outputs()[0].shape == [1, 84, 84]  # 4 + 80 classes, anchors
    nms_free = Path(YOLO(weights).export(format="onnx", imgsz=IMGSZ, nms=False, simplify=False, device="cpu"))
    assert onnxruntime.InferenceSession(str(nms_free)).get_outputs()[0].shape == [1, 84, 6]  # max_det detections
    for onnx_path in (plain, nms_free):
        check = compare_outputs(weights, onnx_path, images, IMGSZ, "cpu")
        assert check["max_box_diff_px"] < BOX_TOLERANCE_PX
        assert check["max_score_diff"] < SCORE_TOLERANCE


def test_half_export_is_refused_on_the_cpu(tmp_path) -> None:
    weights = tmp_path / "any.pt"
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match="CUDA"):
        export_onnx(str(weights), tmp_path / "out", IMGSZ, None, False, True, True, "cpu")
    with pytest.raises(ValueError, match="trained weights"):
        export_onnx("yolov8n.yaml", tmp_path / "out", IMGSZ, None, False, False, True, "cpu")
    assert not (tmp_path / "out").exists()


def detections(rows: list[tuple]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


def test_end_to_end_matching_ignores_order_and_the_cut_off_but_not_moved_boxes() -> None:
    a = detections([(0, 0, 10, 10, 0.9, 0), (20, 20, 30, 30, 0.5, 1), (5, 5, 9, 9, 0.2, 2), (1, 1, 2, 2, 0.1, 0)])
    swapped = a[[1, 0, 2, 3]]
    assert _end2end_diffs(a, swapped, IMGSZ) == (0.0, 0.0)
    cut = a.copy()
    cut[3] = (40, 40, 50, 50, 0.1, 1)  # the last detection differs right at the cut-off: either may keep it
    assert _end2end_diffs(a, cut, IMGSZ) == (0.0, 0.0)
    moved = a.copy()
    moved[1, :4] += 3
    assert _end2end_diffs(a, moved, IMGSZ)[0] == pytest.approx(3.0)
    relabelled = a.copy()
    relabelled[0, 5] = 1
    assert _end2end_diffs(a, relabelled, IMGSZ)[0] >= 10
