"""Pipeline files (YAML or JSON) as users write them: the body of ``POST /v1/jobs``."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from shared.errors import InvalidSpec
from shared.schemas import JobCreate


def validation_lines(exc: ValidationError) -> list[str]:
    """Every problem pydantic found, one ``field: message`` line each."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error.get("loc", ()))
        lines.append(f"{field}: {str(error.get('msg', '')).removeprefix('Value error, ')}")
    return lines


def read_pipeline_file(path: Path) -> dict:
    """The mapping in a pipeline file; a missing or unreadable file, or one that is not YAML, is an
    ``InvalidSpec`` naming the file and the problem in one line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidSpec(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidSpec(f"{path}: is a folder, not a pipeline file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSpec(f"{path}: cannot be read ({exc.__class__.__name__}: {exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise InvalidSpec(f"{path}: not valid YAML or JSON{where}: {problem}") from None
    if not isinstance(data, dict):
        raise InvalidSpec(f"{path}: a pipeline file holds a mapping (dataset, model, stages)")
    return data


def load_pipeline_file(path: Path) -> JobCreate:
    data = read_pipeline_file(path)
    try:
        return JobCreate.model_validate(data)
    except ValidationError as exc:
        lines = validation_lines(exc)
        raise InvalidSpec(f"{path}: {len(lines)} problem(s):\n  " + "\n  ".join(lines)) from None
