"""Stage runners by type: one module per stage type, all behind ``StageRunner``."""

from worker.stages.base import StageRunner
from worker.stages.evaluate import EvaluateRunner
from worker.stages.mine import MineRunner
from worker.stages.train import TrainRunner

RUNNERS: dict[str, type[StageRunner]] = {runner.type: runner for runner in (TrainRunner, EvaluateRunner, MineRunner)}
