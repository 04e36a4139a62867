"""The export stage's check on a model trained on ../shared/omr-bench: ONNX export, then PyTorch and onnxruntime
side by side on the same val images (largest box and score differences, time per image of both, mAP50 of both).

    python bench/export_omr.py --weights /work/runs/omr/home-hem/artifacts/jobs/<id>/03-train/weights/best.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omr import omr_data_yaml  # noqa: E402

from shared.datasets.files import split_images  # noqa: E402
from worker.export_check import compare_outputs, export_onnx, map50_both  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--images", type=int, default=64, help="val images both models run on")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="stagerun-export-omr-"))
    onnx_path = export_onnx(args.weights, out, args.imgsz, None, False, False, True, args.device)
    import yaml

    data = omr_data_yaml()

    config = yaml.safe_load(data.read_text())
    images = split_images([Path(config["path"]) / config["val"]])[: args.images]
    outputs = compare_outputs(args.weights, onnx_path, images, args.imgsz, args.device)
    accuracy = map50_both(args.weights, onnx_path, data, "val", args.imgsz, 16, args.device, args.images)
    result = {**outputs, **accuracy, "onnx_bytes": onnx_path.stat().st_size, "speedup_onnx_vs_torch":
              round(outputs["torch_ms_per_image"] / outputs["onnx_ms_per_image"], 3)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
