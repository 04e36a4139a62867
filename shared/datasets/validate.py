"""The one dataset validator: every problem in an Ultralytics-layout detection dataset, with file and line.

Errors make a dataset unusable (a job naming it is refused): a missing or wrong data.yaml, label lines
with the wrong number of fields, non-numeric values, class ids out of range, coordinates outside
[0, 1], zero-size boxes, unreadable or truncated images, an empty train or val split. Warnings are
reported but do not block: label files without an image (Ultralytics silently ignores them),
duplicate files (same bytes; across splits they leak evaluation data), duplicate label lines, an empty
test split. ``parse_label_text`` is pure; ``validate_dataset`` reads the files: each image once
(hash, header and Pillow's verify pass, no pixel decoding)."""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from shared.datasets.data_yaml import DATA_YAML_NAMES, DatasetRef, find_data_yaml, load_data_yaml
from shared.datasets.files import label_path_for, split_images
from shared.errors import InvalidSpec
from shared.storage import is_inside

MAX_REPORTED_PER_SEVERITY = 300

Box = tuple[int, float, float, float, float]  # class id, x centre, y centre, width, height (normalised)


@dataclass(frozen=True)
class Issue:
    severity: str  # "error" or "warning"
    code: str
    message: str
    file: str | None = None
    line: int | None = None

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "file": self.file, "line": self.line}


@dataclass
class LabeledImage:
    split: str
    path: str
    width: int
    height: int
    boxes: list[Box]


@dataclass
class ValidationReport:
    names: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    images: list[LabeledImage] = field(default_factory=list)
    split_images: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not any(i.severity == "error" for i in self.issues)

    def add(self, severity: str, code: str, message: str, file: str | None = None, line: int | None = None) -> None:
        self.issues.append(Issue(severity, code, message, file, line))

    def to_dict(self) -> dict:
        errors = [i for i in self.issues if i.severity == "error"]
        warnings = [i for i in self.issues if i.severity == "warning"]
        return {
            "valid": self.valid,
            "error_count": len(errors),
            "warning_count": len(warnings),
            "counts": dict(Counter(i.code for i in self.issues)),
            "errors": [i.to_dict() for i in errors[:MAX_REPORTED_PER_SEVERITY]],
            "warnings": [i.to_dict() for i in warnings[:MAX_REPORTED_PER_SEVERITY]],
            "names": self.names,
            "images": self.split_images,
            "labels": sum(len(image.boxes) for image in self.images),
        }


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_label_text(text: str, nc: int) -> tuple[list[Box], list[tuple[int, str, str, str]]]:
    """Boxes of one label file and its problems as (line, severity, code, message). A line is a box
    (``class x y w h``) or a polygon (``class x1 y1 x2 y2 ...``, which Ultralytics turns into its box)."""
    boxes: list[Box] = []
    problems: list[tuple[int, str, str, str]] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
            problems.append((number, "error", "label_fields", f"{len(fields)} fields; a box line has 5: class x y w h"))
            continue
        values = [_number(f) for f in fields]
        if any(v is None for v in values):
            bad = next(f for f, v in zip(fields, values, strict=True) if v is None)
            problems.append((number, "error", "label_not_numeric", f"{bad!r} is not a finite number"))
            continue
        class_value = values[0]
        if not class_value.is_integer() or not 0 <= class_value < nc:
            problems.append(
                (number, "error", "class_out_of_range", f"class id {fields[0]} is not one of 0..{nc - 1} (nc={nc})")
            )
            continue
        coordinates = values[1:]
        if any(not 0.0 <= v <= 1.0 for v in coordinates):
            problems.append((number, "error", "coordinate_out_of_range", "coordinates must be normalised to [0, 1]"))
            continue
        if len(fields) == 5:
            x, y, w, h = coordinates
        else:
            xs, ys = coordinates[0::2], coordinates[1::2]
            x, y, w, h = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)
        if w <= 0.0 or h <= 0.0:
            problems.append((number, "error", "zero_size_box", f"box has zero size (w={w:g}, h={h:g})"))
            continue
        key = " ".join(fields)
        if key in seen:
            problems.append((number, "warning", "duplicate_label", "same label line as an earlier line"))
            continue
        seen.add(key)
        boxes.append((int(class_value), x, y, w, h))
    return boxes, problems


def _check_image(data: bytes) -> tuple[int, int] | str:
    """(width, height) from the header, after Pillow's verify pass; or why the image is unusable."""
    if not data:
        return "empty file"
    try:
        with Image.open(io.BytesIO(data)) as image:
            size, kind = image.size, image.format
            image.verify()
    except Image.DecompressionBombError as exc:
        return f"image declares too many pixels to decode safely ({str(exc)[:120]})"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, ImportError) as exc:
        # ImportError: where Ultralytics is loaded it patches Image.open to retry unknown files with pi_heif
        return f"unreadable image ({exc.__class__.__name__}: {str(exc)[:100]})"
    if kind == "JPEG" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "truncated JPEG (no end-of-image marker)"
    if size[0] <= 0 or size[1] <= 0:
        return f"image has no pixels ({size[0]}x{size[1]})"
    return size


def _relative(path: Path, root: Path) -> str:
    """A path as reports show it: relative to the dataset folder, never a server path. A link inside the
    folder is named where it is; a file outside it only by its name."""
    for candidate in (Path(os.path.abspath(path)), path.resolve()):
        try:
            return candidate.relative_to(root).as_posix()
        except ValueError:
            continue
    return f"(outside the dataset folder)/{path.name}"


def count_images(ref: DatasetRef) -> int:
    return sum(len(split_images(paths)) for paths in ref.splits.values())


def validate_dataset(
    folder: Path,
    boundary: Path | tuple[Path, ...],
    max_images: int | None = None,
    where: str = "the dataset folder",
    file_roots: tuple[Path, ...] = (),
) -> ValidationReport:
    """Validate the dataset whose data.yaml is in ``folder`` (or is ``folder``, a yaml file); split
    folders must stay under ``boundary``. A train stage profiles its dataset with
    ``build_profile(report.names, report.images)`` from ``validate_dataset(ref.yaml_path, datasets_root)``.

    Images and labels must lie in the dataset folder or in one of ``file_roots`` (a hard-example dataset's
    val split is the job's own val). Raises InvalidSpec (field ``path``) only when the dataset holds more
    than ``max_images`` images."""
    report = ValidationReport()
    is_yaml = folder.is_file() and folder.suffix in (".yaml", ".yml")
    root = (folder.parent if is_yaml else folder).resolve()
    yaml_path = folder if is_yaml else find_data_yaml(folder)
    if yaml_path is None:
        report.add("error", "missing_data_yaml", f"no {' or '.join(DATA_YAML_NAMES)} in the dataset folder")
        return report
    yaml_name = _relative(yaml_path, root)
    try:
        ref = load_data_yaml(yaml_path, boundary, root.name, where)
    except InvalidSpec as exc:
        report.add("error", "bad_data_yaml", exc.message, yaml_name)
        return report
    report.names = ref.names
    images_by_split = {split: split_images(paths) for split, paths in ref.splits.items()}
    total = sum(len(images) for images in images_by_split.values())
    if max_images is not None and total > max_images:
        raise InvalidSpec(f"dataset holds {total} images, more than {max_images} can be validated", field="path")
    first_seen: dict[str, str] = {}
    for split, images in images_by_split.items():
        report.split_images[split] = len(images)
        if not images:
            severity = "error" if split in ("train", "val") else "warning"
            report.add(severity, "empty_split", f"split '{split}' has no images", yaml_name)
        used_labels: set[Path] = set()
        for image_path in images:
            _check_one(report, split, image_path, root, len(ref.names), first_seen, used_labels, file_roots)
        for split_path in ref.splits[split]:
            _orphan_labels(report, split_path, used_labels, root)
    return report


def _check_one(
    report: ValidationReport,
    split: str,
    image_path: Path,
    root: Path,
    nc: int,
    first_seen: dict[str, str],
    used_labels: set[Path],
    file_roots: tuple[Path, ...] = (),
) -> None:
    name = _relative(image_path, root)
    allowed = (root, *file_roots)
    if not any(is_inside(folder, image_path) for folder in allowed):
        report.add("error", "outside_dataset", "image is reached through a link or list outside the dataset folder", name)
        return
    try:
        data = image_path.read_bytes()
    except OSError as exc:
        report.add("error", "image_unreadable", f"cannot read image ({exc.strerror or exc})", name)
        return
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    if digest in first_seen:
        report.add("warning", "duplicate_file", f"same content as {first_seen[digest]}", name)
    else:
        first_seen[digest] = name
    checked = _check_image(data)
    if isinstance(checked, str):
        report.add("error", "image_unreadable", checked, name)
        return
    label_path = label_path_for(image_path)
    used_labels.add(label_path.resolve())
    boxes: list[Box] = []
    if label_path.exists() and not any(is_inside(folder, label_path) for folder in allowed):
        report.add("error", "outside_dataset", "label file is a link outside the dataset folder", _relative(label_path, root))
        return
    if label_path.is_file():
        label_name = _relative(label_path, root)
        try:
            text = label_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            report.add("error", "label_unreadable", f"label file is not readable UTF-8 text ({exc})", label_name)
            text = ""
        boxes, problems = parse_label_text(text, nc)
        for line, severity, code, message in problems:
            report.add(severity, code, message, label_name, line)
    report.images.append(LabeledImage(split=split, path=name, width=checked[0], height=checked[1], boxes=boxes))


def _orphan_labels(report: ValidationReport, split_path: Path, used_labels: set[Path], root: Path) -> None:
    if not split_path.is_dir():
        return
    labels_dir = label_path_for(split_path / "x.png").parent
    if labels_dir == split_path or not labels_dir.is_dir():
        return
    for label in sorted(labels_dir.rglob("*.txt")):
        if label.resolve() not in used_labels:
            file = _relative(label, root)
            report.add("error", "label_without_image", "label file has no image (Ultralytics would ignore it)", file)
