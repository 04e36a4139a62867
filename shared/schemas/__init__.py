from shared.schemas.jobs import (
    ArtifactPublic,
    ArtifactsPublic,
    JobCreate,
    JobPublic,
    JobsPublic,
    Links,
    MetricRowPublic,
    MetricsPublic,
    StagePublic,
)
from shared.schemas.pipeline import STAGE_TYPES, EvaluateStage, MineStage, StageSpec, TrainStage

__all__ = [
    "STAGE_TYPES",
    "ArtifactPublic",
    "ArtifactsPublic",
    "EvaluateStage",
    "JobCreate",
    "JobPublic",
    "JobsPublic",
    "Links",
    "MetricRowPublic",
    "MetricsPublic",
    "MineStage",
    "StagePublic",
    "StageSpec",
    "TrainStage",
]
