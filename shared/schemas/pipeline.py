"""Pipeline specs: what a client may ask each stage to do, validated before anything is queued.

Each stage kind declares its spec in shared/stage_kinds/<kind>.py; the union on ``type`` and the list of
types are derived from those declarations. This module is where the rest of the code imports them from."""

from shared.stage_kinds import STAGE_TYPES, StageSpec
from shared.stage_kinds.base import Gate, StageBase, check_batch
from shared.stage_kinds.evaluate import EvaluateStage
from shared.stage_kinds.export import ExportStage
from shared.stage_kinds.mine import MineStage
from shared.stage_kinds.train import TrainStage

__all__ = [
    "STAGE_TYPES",
    "EvaluateStage",
    "ExportStage",
    "Gate",
    "MineStage",
    "StageBase",
    "StageSpec",
    "TrainStage",
    "check_batch",
]
