"""Reading a data.yaml: its class names and split paths, each kept inside the folder(s) it may use. What every
dataset reference (a folder, ``dataset:<id>``, an upload, a mine stage's output) is read with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from shared.errors import InvalidSpec
from shared.storage import is_inside

DATA_YAML_NAMES = ("data.yaml", "data.yml")
REGISTERED_PREFIX = "dataset:"
UPLOADS_DIR = "uploads"


@dataclass(frozen=True)
class DatasetRef:
    yaml_path: Path
    root: Path
    names: list[str]
    splits: dict[str, list[Path]]

    def ultralytics_yaml(self) -> dict:
        """A data.yaml with absolute paths and nothing Ultralytics could download or execute."""
        data = {"path": str(self.root), "names": dict(enumerate(self.names)), "nc": len(self.names)}
        for split, paths in self.splits.items():
            data[split] = [str(p) for p in paths] if len(paths) > 1 else str(paths[0])
        return data


def _inside_any(roots: Path | tuple[Path, ...], path: Path) -> bool:
    return any(is_inside(root, path) for root in (roots if isinstance(roots, tuple) else (roots,)))


def _split_paths(
    value: object, split: str, base: Path, datasets_root: Path | tuple[Path, ...], where: str
) -> list[Path]:
    entries = value if isinstance(value, list) else [value]
    if not entries or not all(isinstance(e, str) and e.strip() for e in entries):
        raise InvalidSpec(f"data.yaml '{split}' must be a path or a list of paths", field="dataset")
    paths = []
    for entry in entries:
        path = Path(entry)
        path = path if path.is_absolute() else base / path
        if not _inside_any(datasets_root, path):
            raise InvalidSpec(f"data.yaml '{split}' path {entry!r} leads outside {where}", field="dataset")
        if not path.exists():
            raise InvalidSpec(f"data.yaml '{split}' path {entry!r} does not exist", field="dataset")
        paths.append(path.resolve())
    return paths


def _class_names(data: dict) -> list[str]:
    names = data.get("names")
    if isinstance(names, list):
        result = names
    elif isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise InvalidSpec("data.yaml 'names' keys must be class ids 0..nc-1", field="dataset") from None
        if keys != list(range(len(keys))):
            raise InvalidSpec("data.yaml 'names' keys must be the class ids 0..nc-1 without gaps", field="dataset")
        result = [names.get(k, names.get(str(k))) for k in keys]
    else:
        raise InvalidSpec("data.yaml has no 'names' list or mapping", field="dataset")
    if not result or not all(isinstance(n, str | int) and str(n).strip() for n in result):
        raise InvalidSpec("data.yaml 'names' must hold at least one non-empty class name", field="dataset")
    nc = data.get("nc")
    if nc is not None and nc != len(result):
        raise InvalidSpec(f"data.yaml says nc={nc} but lists {len(result)} names", field="dataset")
    return [str(n) for n in result]


def find_data_yaml(folder: Path) -> Path | None:
    return next((folder / n for n in DATA_YAML_NAMES if (folder / n).is_file()), None)


def load_data_yaml(
    yaml_path: Path, boundary: Path | tuple[Path, ...], label: str, where: str = "the datasets root"
) -> DatasetRef:
    """Read a data.yaml whose split folders must stay under ``boundary`` (one folder or several; ``where``
    names it in errors).
    Without a ``path`` key, splits are relative to the yaml's folder."""
    try:
        data = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidSpec(
            f"dataset {label!r}: data.yaml is not valid YAML ({exc.__class__.__name__})", field="dataset"
        ) from None
    if not isinstance(data, dict):
        raise InvalidSpec(f"dataset {label!r}: data.yaml must be a mapping", field="dataset")
    names = _class_names(data)
    base = yaml_path.parent
    if data.get("path"):
        if not isinstance(data["path"], str):
            raise InvalidSpec("data.yaml 'path' must be a string", field="dataset")
        base = Path(data["path"]) if Path(data["path"]).is_absolute() else yaml_path.parent / data["path"]
        if not _inside_any(boundary, base):
            raise InvalidSpec(f"data.yaml 'path' leads outside {where}", field="dataset")
    splits = {}
    for split in ("train", "val", "test"):
        if data.get(split):
            splits[split] = _split_paths(data[split], split, base, boundary, where)
    for required in ("train", "val"):
        if required not in splits:
            raise InvalidSpec(f"dataset {label!r}: data.yaml has no '{required}' split", field="dataset")
    return DatasetRef(yaml_path=yaml_path, root=base.resolve(), names=names, splits=splits)


