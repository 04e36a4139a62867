"""Where artifacts live on the shared volume, and the one function that resolves user-given paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from shared.errors import NotFound, PathOutsideRoot, UnusablePath


def safe_resolve(root: Path, relative: str, *, must_exist: bool = True, what: str = "path") -> Path:
    """Resolve ``relative`` inside ``root`` or raise.

    Refuses absolute paths, ``..`` segments, percent-encoded or backslash forms of them, NUL bytes,
    and symlinks whose target leaves the root. Raises NotFound for a path that does not exist when
    ``must_exist``; PathOutsideRoot (400) for any attempt to leave the root."""
    if not isinstance(relative, str) or not relative.strip():
        raise PathOutsideRoot(f"{what} is empty", field=what)
    decoded = relative
    for _ in range(3):  # %252e%252e -> %2e%2e -> ..
        decoded = unquote(decoded)
    if "\x00" in decoded:
        raise PathOutsideRoot(f"{what} contains a NUL byte", field=what)
    normalized = decoded.replace("\\", "/")
    pure = PurePosixPath(normalized)
    if pure.is_absolute() or normalized.startswith("~") or (len(normalized) > 1 and normalized[1] == ":"):
        raise PathOutsideRoot(f"{what} must be relative to its root, got {relative!r}", field=what)
    if any(part == ".." for part in pure.parts):
        raise PathOutsideRoot(f"{what} must not contain '..', got {relative!r}", field=what)
    shown = relative if len(relative) <= 200 else relative[:200] + "..."
    root_resolved = root.resolve()
    candidate = root_resolved.joinpath(*pure.parts)
    try:
        resolved = candidate.resolve()  # follows symlinks
        if resolved != root_resolved and not resolved.is_relative_to(root_resolved):
            raise PathOutsideRoot(f"{what} {shown!r} leads outside its root", field=what)
        exists = resolved.exists()
    except (OSError, RuntimeError) as exc:  # name too long, symlink loop
        raise UnusablePath(
            f"{what} {shown!r} cannot be looked up ({getattr(exc, 'strerror', None) or exc})", field=what
        ) from None
    if must_exist and not exists:
        raise NotFound(f"{what} {shown!r} does not exist", field=what)
    return resolved


def is_inside(root: Path, path: Path) -> bool:
    root_resolved, resolved = root.resolve(), path.resolve()
    return resolved == root_resolved or resolved.is_relative_to(root_resolved)


def job_dir_rel(job_id: str) -> str:
    return f"jobs/{job_id}"


def stage_dir_rel(job_id: str, index: int, stage_type: str) -> str:
    """``jobs/<job>/<NN>-<stage>``: NN counts from 01 in pipeline order."""
    return f"{job_dir_rel(job_id)}/{index + 1:02d}-{stage_type}"


@dataclass(frozen=True)
class ArtifactFile:
    path: str
    size: int


def list_files(root: Path, folder_rel: str) -> list[ArtifactFile]:
    """Every regular file under ``root/folder_rel`` (links that leave the root are not listed)."""
    folder = root / folder_rel
    if not folder.is_dir():
        return []
    files = []
    for dirpath, _dirnames, filenames in os.walk(folder):
        for filename in filenames:
            path = Path(dirpath) / filename
            if not path.is_file() or not is_inside(root, path):
                continue
            files.append(ArtifactFile(path=path.relative_to(folder).as_posix(), size=path.stat().st_size))
    return sorted(files, key=lambda f: f.path)
