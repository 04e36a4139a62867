"""Pipeline files (YAML or JSON) as users write them: the body of ``POST /v1/jobs``."""

from __future__ import annotations

from pathlib import Path

import yaml

from shared.errors import InvalidSpec
from shared.schemas import JobCreate


def load_pipeline_file(path: Path) -> JobCreate:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidSpec(f"{path}: not valid YAML or JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidSpec(f"{path}: a pipeline file holds a mapping (dataset, model, stages)")
    return JobCreate.model_validate(data)
