"""What a dataset looks like to a detector, and which classes it will likely fail on. Pure functions.

``build_profile`` counts images and instances per class and split, histograms box sizes (as a share of
the image), and measures each class's boxes in pixels: at the images' own size and as the model sees
them at a training size (letterboxed: the long side scaled to ``imgsz``). ``classes_at_risk`` names the
classes whose boxes are too thin for the task-aligned assigner to give them a learning signal (see
GUIDE.md, pitfalls): median thin side under 3 px, aspect ratio over 10, or many boxes under 0.005 of
the image. Train stages call it too, with their own ``imgsz``."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from shared.datasets.validate import LabeledImage

REFERENCE_IMGSZ = 640
HISTOGRAM_EDGES = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
OVERSIZED_AREA = 0.1
MIN_THIN_SIDE_PX = 3.0
MAX_ASPECT_RATIO = 10.0
MANY_THIN_SHARE = 0.2
MIN_CROSSED_SHARE = 0.01  # pairs of classes whose crossings are rarer than this are left out of ``crossed_by``
CROSS_TOLERANCE_PX = 1.0


def crossings(classes: np.ndarray, boxes_px: np.ndarray) -> set[tuple[int, int]]:
    """(i, j) for every box j that box i crosses: i has the thinner thin side of the two, lies inside j across
    its own thin side and spans j along its long side (within ``CROSS_TOLERANCE_PX``), like a stem through a
    beam. Boxes are (n, 4) xyxy pixels; boxes of one class never cross each other here."""
    x1, y1, x2, y2 = (boxes_px[:, k] for k in range(4))
    vertical = (x2 - x1) < (y2 - y1)
    tol = CROSS_TOLERANCE_PX
    spans_y = (y1[:, None] <= y1[None, :] + tol) & (y2[:, None] >= y2[None, :] - tol)
    inside_x = (x1[:, None] > x1[None, :]) & (x2[:, None] < x2[None, :])
    spans_x = (x1[:, None] <= x1[None, :] + tol) & (x2[:, None] >= x2[None, :] - tol)
    inside_y = (y1[:, None] > y1[None, :]) & (y2[:, None] < y2[None, :])
    thin = np.minimum(x2 - x1, y2 - y1)
    cross = np.where(vertical[:, None], spans_y & inside_x, spans_x & inside_y)
    cross &= (classes[:, None] != classes[None, :]) & (thin[:, None] < thin[None, :])
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(cross), strict=True)}


def _share(mask: np.ndarray) -> float:
    return round(float(mask.mean()), 4) if mask.size else 0.0


def _median(values: np.ndarray) -> float | None:
    return round(float(np.median(values)), 4) if values.size else None


def _histogram(values: np.ndarray) -> list[int]:
    counts, _ = np.histogram(np.clip(values, 0.0, 1.0), bins=HISTOGRAM_EDGES)
    return [int(c) for c in counts]


def build_profile(names: list[str], images: Iterable[LabeledImage]) -> dict:
    rows = []  # class, split index, w share, h share, w px, h px, long side px
    splits: dict[str, dict] = {}
    crossed = np.zeros((len(names), len(names)), dtype=np.int64)  # [class, crossing class]: boxes crossed
    for image in images:
        split = splits.setdefault(
            image.split,
            {"images": 0, "background_images": 0, "instances": 0, "instances_per_class": {}, "images_per_class": {}},
        )
        split["images"] += 1
        split["background_images"] += not image.boxes
        split["instances"] += len(image.boxes)
        for class_id in {box[0] for box in image.boxes}:
            split["images_per_class"][names[class_id]] = split["images_per_class"].get(names[class_id], 0) + 1
        for class_id, _x, _y, w, h in image.boxes:
            split["instances_per_class"][names[class_id]] = split["instances_per_class"].get(names[class_id], 0) + 1
            rows.append((class_id, w, h, w * image.width, h * image.height, max(image.width, image.height)))
        if len(image.boxes) > 1:
            _count_crossings(crossed, image)
    table = np.array(rows, dtype=np.float64).reshape(-1, 6)
    classes, w, h, w_px, h_px, long_px = table.T
    thin_px = np.minimum(w_px, h_px)
    aspect = np.maximum(w_px, h_px) / np.maximum(thin_px, 1e-9)
    per_class = []
    for class_id, name in enumerate(names):
        mine = classes == class_id
        per_class.append(
            {
                "id": class_id,
                "name": name,
                "instances": int(mine.sum()),
                "images": sum(s["images_per_class"].get(name, 0) for s in splits.values()),
                "median_width_px": _median(w_px[mine]),
                "median_height_px": _median(h_px[mine]),
                "median_thin_side_px": _median(thin_px[mine]),
                "median_thin_side_of_long_side": _median(thin_px[mine] / long_px[mine]),
                "median_width_of_long_side": _median(w_px[mine] / long_px[mine]),
                "median_height_of_long_side": _median(h_px[mine] / long_px[mine]),
                "median_aspect_ratio": _median(aspect[mine]),
                "share_width_under_0.005": _share(w[mine] < 0.005),
                "share_width_under_0.01": _share(w[mine] < 0.01),
                "share_thin_under_0.005": _share(np.minimum(w, h)[mine] < 0.005),
                "share_oversized": _share((w * h)[mine] > OVERSIZED_AREA),
                "crossed_by": _crossed_by(crossed[class_id], int(mine.sum()), names),
            }
        )
    profile = {
        "splits": splits,
        "instances": int(classes.size),
        "classes": per_class,
        "box_size_histogram": {"edges": list(HISTOGRAM_EDGES), "width": _histogram(w), "height": _histogram(h)},
        "share_width_under_0.005": _share(w < 0.005),
        "share_width_under_0.01": _share(w < 0.01),
        "oversized_boxes": int(((w * h) > OVERSIZED_AREA).sum()),
        "share_oversized": _share((w * h) > OVERSIZED_AREA),
    }
    profile["at_risk"] = classes_at_risk(profile)
    return profile


def _count_crossings(crossed: np.ndarray, image: LabeledImage) -> None:
    """Add to ``crossed`` each of the image's boxes once per class that crosses it."""
    classes = np.array([box[0] for box in image.boxes], dtype=np.int64)
    xywh = np.array([box[1:] for box in image.boxes], dtype=np.float64) * ([image.width, image.height] * 2)
    boxes_px = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    for box, crosser_class in {(j, int(classes[i])) for i, j in crossings(classes, boxes_px)}:
        crossed[classes[box], crosser_class] += 1


def _crossed_by(row: np.ndarray, instances: int, names: list[str]) -> dict[str, float]:
    """Share of a class's boxes that boxes of each other class cross (see ``crossings``), where at least
    ``MIN_CROSSED_SHARE``."""
    if not instances:
        return {}
    shares = {names[k]: round(float(n) / instances, 4) for k, n in enumerate(row) if n}
    return {name: share for name, share in shares.items() if share >= MIN_CROSSED_SHARE}


def classes_at_risk(profile: dict, imgsz: int | None = None) -> list[dict]:
    """Classes likely to get no learning signal, each with its reasons. ``imgsz``: the training size
    (checked besides the images' own size and the reference 640)."""
    sizes = sorted({REFERENCE_IMGSZ, *([imgsz] if imgsz else [])})
    at_risk = []
    for entry in profile["classes"]:
        if not entry["instances"]:
            continue
        reasons = []
        native = entry["median_thin_side_px"]
        if native < MIN_THIN_SIDE_PX:
            reasons.append(f"median thin side {native:.2f} px at the images' own size (< {MIN_THIN_SIDE_PX:g})")
        at_size = {size: round(size * entry["median_thin_side_of_long_side"], 2) for size in sizes}
        for size, pixels in at_size.items():
            if pixels < MIN_THIN_SIDE_PX:
                reasons.append(f"median thin side {pixels:.2f} px at imgsz {size} (< {MIN_THIN_SIDE_PX:g})")
        if entry["median_aspect_ratio"] > MAX_ASPECT_RATIO:
            reasons.append(f"median aspect ratio {entry['median_aspect_ratio']:.1f} (> {MAX_ASPECT_RATIO:g})")
        if entry["share_thin_under_0.005"] >= MANY_THIN_SHARE:
            reasons.append(f"{entry['share_thin_under_0.005']:.0%} of boxes thinner than 0.005 of the image")
        if reasons:
            at_risk.append(
                {
                    "id": entry["id"],
                    "name": entry["name"],
                    "instances": entry["instances"],
                    "median_thin_side_px": native,
                    "median_thin_side_px_at_imgsz": {str(size): pixels for size, pixels in at_size.items()},
                    "median_aspect_ratio": entry["median_aspect_ratio"],
                    "share_thin_under_0.005": entry["share_thin_under_0.005"],
                    "share_oversized": entry["share_oversized"],
                    "reasons": reasons,
                }
            )
    return at_risk
