"""The interface every stage type implements, and what a stage is given to work with."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from shared.references import DatasetRef, ModelRef
from shared.settings import Settings
from worker.reporting import StageReporter

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 3


class StageCancelled(Exception):
    """Raised by a stage that stopped because its job was cancelled; what it produced is kept."""


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
    latest_weights: Path | None
    device: str
    reporter: StageReporter

    def latest_or_model(self, prefer_latest: bool) -> str:
        """The best weights of the latest earlier train stage when wanted and present, else the job's model."""
        if prefer_latest and self.latest_weights is not None:
            return str(self.latest_weights)
        return self.model.source

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
    type: ClassVar[str]

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
        """Do the stage's work and return its results (stored on the stage). ``results['weights']``,
        when present, is the path (relative to the artifacts root) later stages start from."""
