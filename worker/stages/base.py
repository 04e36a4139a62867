"""The interface every stage type implements, and what a stage is given to work with."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from shared.references import DatasetRef, ModelRef
from shared.settings import Settings
from shared.stage_kinds import StageKind
from worker.reporting import StageReporter

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 3
EXIT_WAITING = 4
"""A fan-out stage created or is watching child jobs: it waits for them without holding the worker."""


class StageCancelled(Exception):
    """Raised by a stage that stopped because its job was cancelled; what it produced is kept."""


class StageWaiting(Exception):  # noqa: N818 (an outcome, like StageCancelled, not an error)
    """Raised by a fan-out stage whose child jobs are still running: the ids it waits on."""

    def __init__(self, waiting_on: list[str]):
        super().__init__(f"waiting for {len(waiting_on)} child job(s)")
        self.waiting_on = waiting_on


@dataclass
class StageContext:
    settings: Settings
    job_id: str
    stage_id: int
    index: int
    spec: BaseModel
    stage_dir: Path
    dataset: DatasetRef
    data_yaml: Path
    model: ModelRef
    weights: str | None
    """The stage's weights input (worker/stage_process.py follows the chaining rule): an earlier stage's weights
    file or the job's model (a yaml only for kinds that accept one); None for kinds that take no weights."""
    device: str
    reporter: StageReporter

    def relative(self, path: Path) -> str:
        """A path as stored in the database: relative to the artifacts root."""
        return path.resolve().relative_to(self.settings.artifacts_root.resolve()).as_posix()

    def shown(self, path: str | Path) -> str:
        """A path as results show it: relative to the root it lives in (artifacts, weights or datasets), never
        a server path; a model name (``yolov8n.yaml``) stays as it is."""
        candidate = Path(path)
        if not candidate.is_absolute():
            return str(path)
        settings = self.settings
        for root in (settings.artifacts_root, settings.weights_root, settings.datasets_root):
            try:
                return candidate.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                continue
        return candidate.name


class StageRunner(ABC):
    kind: ClassVar[StageKind]

    def __init__(self, context: StageContext):
        self.context = context

    def ultralytics_args(self) -> dict:
        """The stage's own arguments plus where Ultralytics reads data, writes outputs and computes."""
        context = self.context
        args = context.spec.ultralytics_args()
        args.update(
            data=str(context.data_yaml),
            project=str(context.stage_dir.parent),
            name=context.stage_dir.name,
            exist_ok=True,
            device=context.device,
        )
        return args

    @abstractmethod
    def run(self) -> dict:
        """Do the stage's work and return its results (stored on the stage): what the kind declares it produces
        under each product's key (``Product.results_key``, paths relative to the artifacts root), plus reports."""
