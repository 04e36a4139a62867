"""Boxes captured from Ultralytics' validation come back in original-image pixels, whatever the
letterboxing (non-square images, scaled up and down)."""

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow


def test_ground_truth_boxes_come_back_in_image_pixels(tmp_path, embedded):
    from ultralytics import YOLO

    from worker.mining.capture import validator_with_sink
    from worker.ultralytics_ext.offline import prepare_offline

    prepare_offline(embedded.yolo_config_dir)
    rng = np.random.default_rng(0)
    sizes = [(200, 90), (70, 150), (123, 77)]
    for sub in ("images", "labels"):
        (tmp_path / sub / "val").mkdir(parents=True)
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / "images" / "val" / f"{i}.png")
        (tmp_path / "labels" / "val" / f"{i}.txt").write_text("0 0.5 0.4 0.2 0.3\n1 0.25 0.7 0.1 0.2\n")
    data = tmp_path / "data.yaml"
    data.write_text(f"path: {tmp_path}\ntrain: images/val\nval: images/val\nnames: ['a', 'b']\n")
    captured = []
    model = YOLO("yolov8n.yaml")
    model.val(
        validator=validator_with_sink(captured.append), data=str(data), imgsz=160, batch=2, conf=0.001,
        plots=False, device="cpu", project=str(tmp_path / "runs"), name="val",
    )  # fmt: skip
    assert sorted(c.shape for c in captured) == sorted((h, w) for w, h in sizes)
    for image in captured:
        h, w = image.shape
        expected = np.array([[0.4, 0.25, 0.6, 0.55], [0.2, 0.6, 0.3, 0.8]]) * [w, h, w, h]
        assert np.abs(image.gt_boxes - expected).max() < 1e-3
        assert image.gt_cls.tolist() == [0, 1]
        assert image.pred_boxes.shape == (len(image.pred_conf), 4) and (image.pred_boxes[:, 2:] <= [w, h]).all()
