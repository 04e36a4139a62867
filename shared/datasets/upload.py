"""Unpacking an uploaded dataset zip, refusing anything that could escape or exhaust the disk.

Every member is checked before a byte is written: names must be relative and stay inside (no
absolute names, drive letters, ``..``, backslashes or NUL), no symlinks or other special files, no
encryption, at most ``max_files`` members, a declared total under ``max_total_bytes`` and no member
compressed more than ``max_ratio`` times (zip bombs). While extracting, the bytes actually written
are counted against the declared sizes too. Extraction goes into a fresh folder next to the
destination and is renamed into place at the end; on any failure nothing is left behind."""

from __future__ import annotations

import shutil
import stat
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from shared.datasets.data_yaml import find_data_yaml
from shared.errors import InvalidSpec, PayloadTooLarge

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ZipLimits:
    max_total_bytes: int
    max_ratio: float
    max_files: int


def _refuse(message: str) -> InvalidSpec:
    return InvalidSpec(message, field="file")


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename
    if "\x00" in name or "\\" in name:
        raise _refuse(f"zip member {name!r} has a NUL byte or a backslash in its name")
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":") or name.startswith("~"):
        raise _refuse(f"zip member {name!r} has an absolute name")
    if any(part == ".." for part in path.parts):
        raise _refuse(f"zip member {name!r} leads outside the dataset folder ('..')")
    if not path.parts:
        raise _refuse(f"zip member {name!r} has an empty name")
    return path


def check_members(archive: zipfile.ZipFile, limits: ZipLimits) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    members = archive.infolist()
    if len(members) > limits.max_files:
        raise PayloadTooLarge(f"zip holds {len(members)} entries, more than {limits.max_files}", field="file")
    checked, total = [], 0
    for info in members:
        path = _member_path(info)
        mode = info.external_attr >> 16
        file_type = stat.S_IFMT(mode) if info.create_system == 3 else 0  # 0: no Unix type recorded
        if file_type and file_type not in (stat.S_IFREG, stat.S_IFDIR):
            kind = "a symlink" if stat.S_ISLNK(mode) else "a special file"
            raise _refuse(f"zip member {info.filename!r} is {kind}; only files and folders are accepted")
        if info.flag_bits & 0x1:
            raise _refuse(f"zip member {info.filename!r} is encrypted")
        if not info.is_dir():
            total += info.file_size
            if info.file_size > limits.max_ratio * max(info.compress_size, 1):
                raise _refuse(
                    f"zip member {info.filename!r} expands {info.file_size / max(info.compress_size, 1):.0f} times "
                    f"(more than {limits.max_ratio:g}): refused as a zip bomb"
                )
        checked.append((info, path))
    if total > limits.max_total_bytes:
        raise PayloadTooLarge(f"zip expands to {total} bytes, more than {limits.max_total_bytes}", field="file")
    return checked


def _extract(archive: zipfile.ZipFile, members: list, target: Path) -> None:
    for info, path in members:
        destination = target.joinpath(*path.parts)
        if info.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with archive.open(info) as source, destination.open("xb") as sink:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                if written > info.file_size:
                    raise _refuse(f"zip member {info.filename!r} is larger than its header says")
                sink.write(chunk)


def extract_zip(upload: BinaryIO, destination: Path, limits: ZipLimits) -> Path:
    """Unpack ``upload`` into the new folder ``destination`` (which must not exist); returns it."""
    try:
        archive = zipfile.ZipFile(upload)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _refuse(f"not a readable zip file ({exc})") from None
    staging = destination.parent / f".incoming-{uuid.uuid4().hex}"
    try:
        with archive:
            members = check_members(archive, limits)
            staging.mkdir(parents=True)
            try:
                _extract(archive, members, staging)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
                raise _refuse(f"zip file is damaged or uses an unsupported method ({exc})") from None
        staging.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination


def dataset_folder(extracted: Path) -> Path:
    """Where data.yaml is: the top of the archive, or its single top-level folder."""
    if find_data_yaml(extracted) is None:
        entries = [p for p in extracted.iterdir() if not p.name.startswith(("__MACOSX", "."))]
        if len(entries) == 1 and entries[0].is_dir() and find_data_yaml(entries[0]) is not None:
            return entries[0]
    return extracted
