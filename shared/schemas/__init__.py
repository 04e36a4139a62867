from shared.schemas.jobs import (
    ArtifactPublic,
    ArtifactsPublic,
    JobCreate,
    JobPublic,
    JobsPublic,
    Links,
    MetricRowPublic,
    MetricsPublic,
    PresetOverrides,
    RerunRequest,
    StagePublic,
)
from shared.schemas.pipeline import STAGE_TYPES, EvaluateStage, ExportStage, MineStage, StageSpec, TrainStage

__all__ = [
    "STAGE_TYPES",
    "ArtifactPublic",
    "ArtifactsPublic",
    "EvaluateStage",
    "ExportStage",
    "JobCreate",
    "JobPublic",
    "JobsPublic",
    "Links",
    "MetricRowPublic",
    "MetricsPublic",
    "MineStage",
    "PresetOverrides",
    "RerunRequest",
    "StagePublic",
    "StageSpec",
    "TrainStage",
]
