"""The one gate every dataset reference passes before a job is queued: a folder or yaml named by path, a
registered ``dataset:<id>`` (whose folder may have changed since it was registered) or an upload.

It runs the dataset validator and refuses, with a 422 naming each problem by file and line, any dataset with
an error: the problems Ultralytics would otherwise drop silently (bad label lines, unreadable images, labels
without images) and files that a link or a list file reaches outside the dataset's folder. Results are
cached by a fingerprint of the data.yaml and of every image and label file's size and mtime, so a re-submit
naming an unchanged dataset does not read it again."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

from shared.datasets.data_yaml import DatasetRef
from shared.datasets.files import label_path_for, split_images
from shared.datasets.validate import ValidationReport, validate_dataset
from shared.errors import InvalidSpec

CACHE_SIZE = 256
MAX_LISTED = 50

_cache: OrderedDict[str, tuple[str, list[dict], dict]] = OrderedDict()
_lock = threading.Lock()


def _tree_entries(folder: Path) -> list[str]:
    """(path, size, mtime) of every file under ``folder``, one ``scandir`` pass (links are followed for size
    and mtime, not walked into: the validator judges them)."""
    entries, pending = [], [str(folder)]
    while pending:
        try:
            listing = os.scandir(pending.pop())
        except OSError:
            continue
        with listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    continue
                if not entry.name.endswith(".cache"):  # Ultralytics' label cache, rewritten by training
                    entries.append(_entry(entry.path, entry.stat))
    return entries


def _entry(path: object, stat) -> str:
    """``path``, size and mtime; ``stat`` is called (it follows links), a file gone meanwhile is 'missing'."""
    try:
        result = stat()
    except OSError:
        return f"{path}\0missing"
    return f"{path}\0{result.st_size}\0{result.st_mtime_ns}"


def _listed_entries(list_file: Path) -> list[str]:
    return [_entry(path, path.stat) for image in split_images([list_file]) for path in (image, label_path_for(image))]


def fingerprint(ref: DatasetRef) -> str:
    """A digest of data.yaml's bytes and of (path, size, mtime) of every file a split reaches: the image
    folder and its labels folder, or a list file, the images it lists and their labels."""
    digest = hashlib.blake2b(ref.yaml_path.read_bytes(), digest_size=20)
    for split in sorted(ref.splits):
        entries = [f"split {split}"]
        for path in ref.splits[split]:
            if path.is_dir():
                entries += _tree_entries(path)
                labels = label_path_for(path / "x.png").parent
                if labels != path:
                    entries += _tree_entries(labels)
            else:
                entries.append(_entry(path, path.stat))
                entries += _listed_entries(path) if path.suffix == ".txt" else []
        digest.update("\n".join(sorted(entries)).encode())
    return digest.hexdigest()


def _problems(report: ValidationReport) -> list[dict]:
    return [
        {"field": "dataset", "code": i.code, "message": i.message, "file": i.file, "line": i.line}
        for i in report.issues
        if i.severity == "error"
    ]


def check_dataset(ref: DatasetRef, label: str, max_images: int | None = None) -> dict:
    """Raise ``InvalidSpec`` (422, field ``dataset``, every error in ``details``) unless the dataset is valid;
    returns the validation counts of a valid one."""
    key = str(ref.yaml_path.resolve())
    current = fingerprint(ref)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == current:
            _cache.move_to_end(key)
            problems, counts = cached[1], cached[2]
        else:
            cached = None
    if cached is None:
        report = validate_dataset(ref.yaml_path, ref.yaml_path.parent, max_images)
        problems, counts = _problems(report), report.split_images
        with _lock:
            _cache[key] = (current, problems, counts)
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    if problems:
        first = problems[0]
        where = f"{first['file']}:{first['line']}" if first["line"] else first["file"] or "data.yaml"
        more = f" (and {len(problems) - 1} more problem(s), listed in details)" if len(problems) > 1 else ""
        raise InvalidSpec(
            f"dataset {label!r} did not pass validation: {where}: {first['message']}{more}",
            field="dataset",
            details=problems[:MAX_LISTED],
        )
    return counts


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def cached_entries() -> int:
    return len(_cache)

