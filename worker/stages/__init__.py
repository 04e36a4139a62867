"""Stage runners, one module per stage kind declared in shared/stage_kinds, named after it
(``worker/stages/<kind>.py``) and loaded when a stage of that kind runs: a search or k-fold step, which only
reads the database and creates jobs, never imports torch."""

from __future__ import annotations

import importlib
import importlib.util
import inspect

from shared.stage_kinds import KINDS
from worker.stages.base import StageRunner

_missing = [kind for kind in KINDS if importlib.util.find_spec(f"worker.stages.{kind}") is None]
if _missing:
    raise RuntimeError(f"stage kinds without a runner module: {sorted(_missing)}")


def runner_for(kind: str) -> type[StageRunner]:
    """The runner of ``kind``: the ``StageRunner`` in worker/stages/<kind>.py keyed to that kind."""
    module = importlib.import_module(f"worker.stages.{kind}")
    found = [
        obj for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, StageRunner) and obj is not StageRunner and getattr(obj, "kind", None) is KINDS[kind]
    ]
    if len(found) != 1:
        raise RuntimeError(f"worker/stages/{kind}.py must hold one StageRunner whose kind is {kind}: found {found}")
    return found[0]


def all_runners() -> dict[str, type[StageRunner]]:
    return {kind: runner_for(kind) for kind in KINDS}
