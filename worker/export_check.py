"""The core of the export stage (worker/stages/export.py): export weights to ONNX with Ultralytics, then check the
exported model against the PyTorch model it came from, on the raw detection outputs and on mAP50.

Everything runs offline: the ONNX exporter's requirements (``onnx>=1.12,<2``, ``onnxruntime``, and with
``simplify`` ``onnxslim>=0.1.82``) are project dependencies, checked here before Ultralytics would try to
pip-install them (``check_onnx_requirements``)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import yaml

ONNX_NAME = "model.onnx"

ORT_BUILDS = ("onnxruntime", "onnxruntime-gpu")
"""ONNX Runtime distributions that provide the ``onnxruntime`` module (either satisfies Ultralytics)."""

ONNX_REQUIREMENTS = {"onnx": ">=1.12.0,<2.0.0", "onnxslim": ">=0.1.82"}
"""What ``Exporter.export_onnx`` in Ultralytics 8.4 checks (and would otherwise try to pip-install)."""

END2END_SCORE_MARGIN = 1e-4
"""End-to-end outputs keep the top ``max_det`` detections: one that scores near the cut-off may be kept by one
model and not the other, so only detections this far (plus twice the measured score spread) above the lower
cut-off must have a partner."""


def _version_ok(name: str, spec: str) -> bool:
    from ultralytics.utils.checks import check_version

    try:
        return check_version(metadata.version(name), spec)
    except metadata.PackageNotFoundError:
        return False


def check_onnx_requirements(simplify: bool = True) -> None:
    """Raise RuntimeError naming what is missing where Ultralytics' ONNX export would try to pip-install it
    (which cannot work on an offline worker); returns silently when everything is installed."""
    missing = []
    if not _version_ok("onnx", ONNX_REQUIREMENTS["onnx"]):
        missing.append(f"onnx{ONNX_REQUIREMENTS['onnx']}")
    if not any(_version_ok(build, "") for build in ORT_BUILDS):
        missing.append("onnxruntime")
    if simplify and not _version_ok("onnxslim", ONNX_REQUIREMENTS["onnxslim"]):
        missing.append(f"onnxslim{ONNX_REQUIREMENTS['onnxslim']}")
    if missing:
        raise RuntimeError(
            f"ONNX export needs {', '.join(missing)} installed in the worker's environment (stagerun's "
            "dependencies); Ultralytics would try to pip-install them at run time, which an offline worker cannot"
        )


def _torch_device(device: str):
    from ultralytics.utils.torch_utils import select_device

    return select_device(device, verbose=False)


def export_onnx(
    weights: str,
    out_dir: Path,
    imgsz: int,
    opset: int | None,
    dynamic: bool,
    half: bool,
    simplify: bool,
    device: str,
) -> Path:
    """Export ``weights`` (a trained .pt file) to ONNX with Ultralytics, batch 1, input ``imgsz`` x ``imgsz``
    (any batch and size with ``dynamic``), returns ``out_dir/model.onnx``. Ultralytics' default head mode: no NMS
    in the graph, and for a dual-head model (YOLO26) the one-to-many head that its predict and val use by
    default, so the export is what stagerun's evaluate stage measured.

    ``opset`` None lets Ultralytics choose; ``half`` (FP16) needs a CUDA device and raises ValueError otherwise.
    The export is made from a link (or copy) of the weights inside ``out_dir``, so that nothing is written beside
    the source weights (Ultralytics writes the .onnx next to the file it loaded)."""
    from ultralytics import YOLO

    source = Path(weights)
    if source.suffix.lower() in {".yaml", ".yml"}:
        raise ValueError(f"export needs trained weights (a .pt file), not a model definition: {weights}")
    if not source.is_file():
        raise FileNotFoundError(f"weights to export not found: {weights}")
    torch_device = _torch_device(device)
    if half and torch_device.type != "cuda":
        raise ValueError(f"half (FP16) export needs a CUDA device, not '{device}'")
    check_onnx_requirements(simplify)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    try:
        staged = staging / f"{Path(ONNX_NAME).stem}{source.suffix}"
        try:
            os.link(source, staged)
        except OSError:
            shutil.copy2(source, staged)
        exported = YOLO(str(staged)).export(
            format="onnx",
            imgsz=imgsz,
            opset=opset,
            dynamic=dynamic,
            quantize=16 if half else None,
            simplify=simplify,
            batch=1,
            device=device,
        )
        if not exported or not Path(exported).is_file():
            raise RuntimeError(f"Ultralytics' ONNX export of {source.name} produced no file")
        target = out_dir / ONNX_NAME
        os.replace(exported, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def letterboxed(image_path: Path, imgsz: int) -> np.ndarray:
    """``image_path`` as the models get it: letterboxed to ``imgsz`` x ``imgsz`` (Ultralytics' LetterBox, grey
    114 padding, centred), RGB, 0-1 float32, shape (1, 3, imgsz, imgsz)."""
    import cv2
    from ultralytics.data.augment import LetterBox

    bgr = cv2.imread(str(image_path))
    if bgr is None:
        raise ValueError(f"cannot read image {image_path}")
    boxed = LetterBox((imgsz, imgsz), auto=False, stride=32)(image=bgr)
    chw = np.ascontiguousarray(boxed[..., ::-1].transpose(2, 0, 1))
    return chw[None].astype(np.float32) / np.float32(255.0)


def _reference_model(weights: str, torch_device, end2end: bool):
    """The PyTorch model as Ultralytics runs it for prediction: FP32, eval, Conv+BN fused, with the head mode
    (``end2end``: the NMS-free one-to-one head of a dual-head model) that the ONNX model was exported in."""
    from ultralytics import YOLO

    yolo = YOLO(weights)
    if yolo.task != "detect":
        raise ValueError(f"the export check compares detection models; {weights} is a {yolo.task} model")
    model = yolo.model.to(torch_device).float().eval()
    if getattr(model.model[-1], "one2one_cv2", None) is not None:
        model.end2end = end2end
    for parameter in model.parameters():
        parameter.requires_grad = False
    return model.fuse(verbose=False), len(yolo.names)


def _is_end2end(model) -> bool:
    """Whether the (fused) model's head is end-to-end: top ``max_det`` detections instead of every anchor."""
    return bool(getattr(model.model[-1], "end2end", False))


def _exported_end2end(onnx_path: Path) -> bool:
    """Whether Ultralytics exported the NMS-free head (its ``end2end`` metadata)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return any(p.key == "end2end" and p.value == "True" for p in model.metadata_props)


def _session(onnx_path: Path, torch_device):
    import onnxruntime

    available = onnxruntime.get_available_providers()
    providers = ["CPUExecutionProvider"]
    if torch_device.type == "cuda" and "CUDAExecutionProvider" in available:
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": torch_device.index or 0}))
    return onnxruntime.InferenceSession(str(onnx_path), providers=providers)


def _xyxy(xywh: np.ndarray) -> np.ndarray:
    """(4, A) centre-size boxes as (4, A) corners."""
    cx, cy, w, h = xywh
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _one_way(a: np.ndarray, b: np.ndarray, floor: float, missing_px: float) -> tuple[float, float]:
    """Largest box and score difference from each detection of ``a`` above ``floor`` to its partner in ``b``: the
    detection of the same class with the nearest corners (L-infinity). One without a same-class detection counts
    as ``missing_px`` and its whole score."""
    box_diff = score_diff = 0.0
    for row in a[a[:, 4] > floor]:
        same = b[b[:, 5] == row[5]]
        if not len(same):
            box_diff, score_diff = max(box_diff, missing_px), max(score_diff, float(row[4]))
            continue
        distance = np.abs(same[:, :4] - row[:4]).max(axis=1)
        nearest = int(distance.argmin())
        box_diff = max(box_diff, float(distance[nearest]))
        score_diff = max(score_diff, float(abs(same[nearest, 4] - row[4])))
    return box_diff, score_diff


def _end2end_diffs(torch_out: np.ndarray, onnx_out: np.ndarray, imgsz: int) -> tuple[float, float]:
    """Differences between two end-to-end outputs (K, 6+: x1, y1, x2, y2, score, class), matched both ways."""
    spread = float(np.abs(np.sort(torch_out[:, 4]) - np.sort(onnx_out[:, 4])).max()) if len(torch_out) else 0.0
    floor = max(float(torch_out[:, 4].min()), float(onnx_out[:, 4].min())) + 2 * spread + END2END_SCORE_MARGIN
    forward = _one_way(torch_out, onnx_out, floor, float(imgsz))
    backward = _one_way(onnx_out, torch_out, floor, float(imgsz))
    return max(forward[0], backward[0]), max(spread, forward[1], backward[1])


def _raw_diffs(torch_out: np.ndarray, onnx_out: np.ndarray, nc: int) -> tuple[float, float]:
    """Differences between two raw (4 + nc, A) outputs: centre-size boxes in pixels, then per-class scores."""
    box_diff = float(np.abs(_xyxy(torch_out[:4]) - _xyxy(onnx_out[:4])).max())
    score_diff = float(np.abs(torch_out[4 : 4 + nc] - onnx_out[4 : 4 + nc]).max())
    return box_diff, score_diff


def compare_outputs(weights: str, onnx_path: Path, images: list[Path], imgsz: int, device: str) -> dict:
    """Run the PyTorch model and the ONNX model (onnxruntime) on the same input tensors and return the largest
    differences between their detection outputs.

    Input: each image letterboxed to ``imgsz`` x ``imgsz`` exactly as Ultralytics' predictor does for a fixed-size
    model (``letterboxed``); both models get the very same tensor, one image at a time (FP16 for an FP16 export).
    PyTorch model: the weights as Ultralytics predicts with them, FP32, eval mode, Conv+BN fused, on ``device``.

    Compared (no confidence threshold and no NMS, so the whole output counts):

    - The raw head output that ``export_onnx`` produces (YOLOv8/11, and YOLO26's one-to-many head), (4 + nc,
      anchors): every anchor's box, as corners x1, y1, x2, y2 in pixels of the ``imgsz`` input, and every
      anchor's per-class score (sigmoid, 0-1).
    - An NMS-free export (Ultralytics ``nms=False`` of a dual-head model such as YOLO26; ``end2end`` in the ONNX
      metadata), (max_det, 6): x1, y1, x2, y2 in pixels, score, class. The two lists are matched both ways, each
      detection to the same-class detection of the other list with the nearest corners, leaving out only
      detections within the score spread of the top-``max_det`` cut-off (which either model may keep or drop);
      one with no same-class partner counts as ``imgsz`` px.

    Returns ``{"images", "max_box_diff_px", "max_score_diff", "providers", "onnx_ms_per_image",
    "torch_ms_per_image"}``: the largest absolute coordinate difference (px), the largest absolute score
    difference, onnxruntime's execution providers, and the mean forward time of each model per image (after one
    warm-up run, preprocessing excluded). Output shapes that differ raise ValueError."""
    import torch

    if not images:
        raise ValueError("the export check needs at least one image")
    torch_device = _torch_device(device)
    session = _session(Path(onnx_path), torch_device)
    model, nc = _reference_model(weights, torch_device, _exported_end2end(Path(onnx_path)))
    feed = session.get_inputs()[0]
    input_type = np.float16 if "float16" in feed.type else np.float32
    cuda = torch_device.type == "cuda"
    end2end = _is_end2end(model)

    def run_torch(tensor: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model(torch.from_numpy(tensor).to(torch_device))
        out = out[0] if isinstance(out, (list, tuple)) else out
        if cuda:
            torch.cuda.synchronize(torch_device)
        return out.float().cpu().numpy()

    def run_onnx(tensor: np.ndarray) -> np.ndarray:
        return session.run(None, {feed.name: tensor.astype(input_type)})[0].astype(np.float32)

    inputs = [letterboxed(path, imgsz) for path in images]
    run_torch(inputs[0]), run_onnx(inputs[0])  # warm-up: lazy CUDA and onnxruntime initialisation
    box_diff = score_diff = 0.0
    torch_s = onnx_s = 0.0
    for tensor in inputs:
        start = time.perf_counter()
        torch_out = run_torch(tensor)
        torch_s += time.perf_counter() - start
        start = time.perf_counter()
        onnx_out = run_onnx(tensor)
        onnx_s += time.perf_counter() - start
        if torch_out.shape != onnx_out.shape:
            raise ValueError(
                f"the ONNX model's output {tuple(onnx_out.shape)} differs in shape from the PyTorch model's "
                f"{tuple(torch_out.shape)}"
            )
        if end2end:
            boxes, scores = _end2end_diffs(torch_out[0], onnx_out[0], imgsz)
        else:
            boxes, scores = _raw_diffs(torch_out[0], onnx_out[0], nc)
        box_diff, score_diff = max(box_diff, boxes), max(score_diff, scores)
    count = len(inputs)
    return {
        "images": count,
        "max_box_diff_px": box_diff,
        "max_score_diff": score_diff,
        "providers": list(session.get_providers()),
        "onnx_ms_per_image": round(1000 * onnx_s / count, 3),
        "torch_ms_per_image": round(1000 * torch_s / count, 3),
    }


def _split_paths(data_yaml: Path, split: str) -> tuple[list[Path], dict]:
    """The images of ``split`` (folders and/or list files, as Ultralytics resolves the data yaml), sorted, and the
    resolved dataset dict."""
    from ultralytics.data.utils import check_det_dataset

    from worker.mining.hard_dataset import split_images

    data = check_det_dataset(str(data_yaml))
    entries = data.get(split)
    if not entries:
        raise ValueError(f"{data_yaml} has no '{split}' split")
    entries = entries if isinstance(entries, list) else [entries]
    return split_images([Path(entry) for entry in entries]), data


def map50_both(
    weights: str,
    onnx_path: Path,
    data_yaml: Path,
    split: str,
    imgsz: int,
    batch: int,
    device: str,
    max_images: int | None,
) -> dict:
    """mAP50 (Ultralytics validation, default conf 0.001 and NMS IoU 0.7) of the PyTorch weights and of the ONNX
    model on the same images: the first ``max_images`` (all with None) of ``split``, sorted by path, written to a
    list file that a temporary data yaml names as its split. Both validate square ``imgsz`` inputs (rect off), so
    that they see identical letterboxed images; Ultralytics runs a fixed-size ONNX model at batch 1.

    An NMS-free export (``end2end`` metadata) is compared with the PyTorch model's NMS-free head (``nms=False``),
    anything else with Ultralytics' default NMS on both. The ONNX model runs on the CPU when onnxruntime has no
    CUDA provider (the plain ``onnxruntime`` wheel), so that Ultralytics does not try to pip-install
    ``onnxruntime-gpu``. Returns ``{"torch_mAP50", "onnx_mAP50",
    "images"}``."""
    import onnxruntime
    from ultralytics import YOLO

    images, data = _split_paths(Path(data_yaml), split)
    if max_images is not None:
        images = images[:max_images]
    if not images:
        raise ValueError(f"the '{split}' split of {data_yaml} has no images")
    torch_device = _torch_device(device)
    onnx_device = device
    if torch_device.type != "cpu" and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        onnx_device = "cpu"
    with tempfile.TemporaryDirectory(prefix="stagerun-export-check-") as tmp:
        work = Path(tmp)
        listing = work / f"{split}.txt"
        listing.write_text("".join(f"{path.resolve()}\n" for path in images))
        keep = {k: v for k, v in data.items() if k in {"names", "nc", "channels"}}
        check_yaml = work / "data.yaml"
        check_yaml.write_text(yaml.safe_dump({**keep, "path": str(work), "train": str(listing), "val": str(listing)}))
        common = {
            "data": str(check_yaml),
            "split": "val",
            "imgsz": imgsz,
            "batch": batch,
            "rect": False,
            "plots": False,
            "save_json": False,
            "verbose": False,
            "project": str(work),
            "exist_ok": True,
            **({"nms": False} if _exported_end2end(Path(onnx_path)) else {}),
        }
        torch_metrics = YOLO(weights).val(**common, device=device, name="torch")
        onnx_metrics = YOLO(str(onnx_path), task="detect").val(**common, device=onnx_device, name="onnx")
    return {
        "torch_mAP50": float(torch_metrics.box.map50),
        "onnx_mAP50": float(onnx_metrics.box.map50),
        "images": len(images),
    }
