"""Resolve what a job names (dataset, starting model) to files on the volume, refusing anything else.

Used at submit time by the API (so a bad reference is a 422 before anything is queued) and again by
the worker at run time (so it trains on exactly what was checked). Imports neither torch nor
Ultralytics: model names are checked against Ultralytics' packaged yaml files on disk. Reading a data.yaml
is shared/datasets/data_yaml.py's job; registered datasets are shared/datasets/registry.py's.

``DATA_YAML_NAMES``, ``UPLOADS_DIR``, ``DatasetRef`` and ``find_data_yaml`` are imported here for callers that
resolve references."""


from __future__ import annotations

import importlib.util
import re
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from sqlalchemy.orm import Session

from shared.auth import SYSTEM, Principal
from shared.datasets.data_yaml import (
    DATA_YAML_NAMES,
    REGISTERED_PREFIX,
    UPLOADS_DIR,
    DatasetRef,
    find_data_yaml,
    load_data_yaml,
)
from shared.datasets.registry import registered_dataset_ref
from shared.errors import InvalidSpec, NotFound, PathOutsideRoot
from shared.models import Job
from shared.settings import Settings
from shared.storage import safe_resolve

__all__ = [
    "DATA_YAML_NAMES",
    "UPLOADS_DIR",
    "DatasetRef",
    "ModelRef",
    "find_data_yaml",
    "model_layer_count",
    "resolve_dataset",
    "resolve_model",
]


def resolve_dataset(
    settings: Settings, dataset: str, *, session: Session | None = None, principal: Principal | None = None
) -> DatasetRef:
    """``dataset`` is a folder (holding data.yaml) or a yaml file, relative to the datasets root,
    ``dataset:<id>`` for a registered dataset that ``principal`` may see and that passed validation, or
    ``fold:<job>/<stage>/<fold>`` for a fold a k-fold stage of a job ``principal`` may see wrote."""
    if dataset.startswith(FOLD_PREFIX):
        return fold_dataset_ref(settings, dataset, session, principal)
    if dataset.startswith(REGISTERED_PREFIX):
        return registered_dataset_ref(settings, dataset.removeprefix(REGISTERED_PREFIX), session, principal)
    try:
        target = safe_resolve(settings.datasets_root, dataset, what="dataset")
    except (PathOutsideRoot, NotFound) as exc:
        raise InvalidSpec(exc.message, field="dataset") from None
    relative = target.relative_to(settings.datasets_root.resolve()).parts
    if relative and relative[0] == UPLOADS_DIR:
        raise InvalidSpec("an uploaded dataset is named as dataset:<id>, not by its folder", field="dataset")
    if target.is_dir():
        yaml_path = find_data_yaml(target)
        if yaml_path is None:
            raise InvalidSpec(f"dataset {dataset!r} has no data.yaml", field="dataset")
    elif target.suffix in (".yaml", ".yml"):
        yaml_path = target
    else:
        raise InvalidSpec(f"dataset {dataset!r} is neither a folder nor a yaml file", field="dataset")
    return load_data_yaml(yaml_path, settings.datasets_root, dataset)


FOLD_PREFIX = "fold:"
_FOLD_REF = re.compile(r"^fold:([0-9a-f]{32})/(\d{1,3})/(\d{1,3})$")


def is_fold_ref(dataset: str) -> bool:
    return dataset.startswith(FOLD_PREFIX)


def fold_dataset_ref(
    settings: Settings, dataset: str, session: Session | None, principal: Principal | None
) -> DatasetRef:
    """A k-fold stage's fold: train on the other folds' images, val on its own, as list files in the stage's folder
    (worker/folds.py) over the job's dataset, whose folder must stay under the datasets root."""
    from shared.models import Stage

    match = _FOLD_REF.match(dataset)
    if match is None:
        raise InvalidSpec("a fold is named fold:<job id>/<stage index>/<fold index>", field="dataset")
    job_id, stage_index, fold = match.group(1), int(match.group(2)), int(match.group(3))
    if session is None:
        raise InvalidSpec("a fold reference needs the database", field="dataset")
    job = session.get(Job, job_id)
    if job is None or (principal is not None and not principal.can_see(job.owner)):
        raise InvalidSpec(f"dataset {dataset!r}: job {job_id} not found", field="dataset")
    stage = session.query(Stage).filter_by(job_id=job_id, index=stage_index).one_or_none()
    if stage is None or stage.type != "kfold":
        raise InvalidSpec(f"dataset {dataset!r}: stage {stage_index} of job {job_id} is not a kfold stage",
                          field="dataset")
    fold_dir = safe_resolve(settings.artifacts_root, stage.dir, what="dataset") / "folds" / f"fold-{fold}"
    yaml_path = fold_dir / "data.yaml"
    if not yaml_path.is_file():
        raise InvalidSpec(f"dataset {dataset!r}: that fold has not been written", field="dataset")
    return load_data_yaml(yaml_path, (fold_dir, settings.datasets_root.resolve()), dataset,
                          "the fold's folder and the datasets root")


@lru_cache
def ultralytics_model_configs() -> frozenset[str]:
    """Stems of the model yamls Ultralytics ships (yolov8, yolo11, ...), found without importing it."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    cfg_dir = Path(next(iter(spec.submodule_search_locations))) / "cfg" / "models"
    return frozenset(p.stem for p in cfg_dir.rglob("*.yaml"))


def _is_known_model_yaml(name: str) -> bool:
    stem = Path(name).stem
    unscaled = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", stem)  # yolov8n -> yolov8, as Ultralytics does
    known = ultralytics_model_configs()
    return stem in known or unscaled in known


def _model_yaml_file(name: str) -> Path | None:
    """The packaged Ultralytics yaml a model name stands for (yolov8n.yaml -> cfg/models/v8/yolov8.yaml)."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        return None
    stem = Path(name).stem
    unscaled = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", stem)
    cfg_dir = Path(next(iter(spec.submodule_search_locations))) / "cfg" / "models"
    for candidate in (stem, unscaled):
        found = sorted(cfg_dir.rglob(f"{candidate}.yaml"))
        if found:
            return found[0]
    return None


def model_layer_count(model: ModelRef) -> int | None:
    """How many layers (``model.model`` modules) a model config builds: its backbone plus head entries. None
    for weights (reading a checkpoint needs torch; the worker checks those) or an unreadable config."""
    if model.is_weights:
        return None
    path = Path(model.source) if Path(model.source).is_absolute() else _model_yaml_file(model.source)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) if path is not None else None
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    if not isinstance(config, dict) or not isinstance(config.get("backbone"), list):
        return None
    return len(config["backbone"]) + len(config.get("head") or [])


def _check_checkpoint(path: Path, field: str) -> Path:
    if path.suffix != ".pt":
        raise InvalidSpec(f"weights file {path.name!r} must end in .pt", field=field)
    if not path.is_file() or not zipfile.is_zipfile(path):
        raise InvalidSpec(f"{path.name!r} is not a PyTorch checkpoint (torch.save zip archive)", field=field)
    return path


@dataclass(frozen=True)
class ModelRef:
    """What a job starts from: ``source`` is a model yaml name or an absolute path to a .pt."""

    source: str
    is_weights: bool


def resolve_model(
    settings: Settings, session: Session, model: str, field: str = "model", *, principal: Principal = SYSTEM
) -> ModelRef:
    """``job:<id>`` only names a job ``principal`` may see (the API passes the caller's)."""
    model = model.strip()
    if model.startswith("job:"):
        job_id = model[4:]
        job = session.get(Job, job_id) if re.fullmatch(r"[0-9a-f]{32}", job_id) else None
        if job is None or not principal.can_see(job.owner):
            raise InvalidSpec(f"no job {job_id!r} to take weights from", field=field)
        if not job.best_weights:
            raise InvalidSpec(f"job {job_id} has no best weights (state {job.state})", field=field)
        weights = safe_resolve(settings.artifacts_root, job.best_weights, what=field)
        return ModelRef(source=str(_check_checkpoint(weights, field)), is_weights=True)
    suffix = Path(model).suffix
    if suffix in (".yaml", ".yml"):
        if "/" not in model and "\\" not in model and _is_known_model_yaml(model):
            return ModelRef(source=model, is_weights=False)
        for root in (settings.weights_root, settings.datasets_root):
            try:
                return ModelRef(source=str(safe_resolve(root, model, what=field)), is_weights=False)
            except NotFound:
                continue
            except PathOutsideRoot as exc:
                raise InvalidSpec(exc.message, field=field) from None
        raise InvalidSpec(
            f"model {model!r} is not an Ultralytics model config nor a yaml in the weights root", field=field
        )
    if suffix == ".pt":
        for root in (settings.weights_root, settings.artifacts_root):
            try:
                path = safe_resolve(root, model, what=field)
            except NotFound:
                continue
            except PathOutsideRoot as exc:
                raise InvalidSpec(exc.message, field=field) from None
            return ModelRef(source=str(_check_checkpoint(path, field)), is_weights=True)
        raise InvalidSpec(
            f"weights {model!r} not found in the weights root or the artifacts root; "
            "stagerun never downloads weights: put the file in the weights root first",
            field=field,
        )
    raise InvalidSpec(f"model {model!r} must be a model yaml (yolov8n.yaml), a .pt file, or job:<id>", field=field)
