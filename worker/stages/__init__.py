"""Stage runners, keyed by the stage kinds declared in shared/stage_kinds: one module per kind."""

from shared.stage_kinds import KINDS
from worker.stages.base import StageRunner
from worker.stages.evaluate import EvaluateRunner
from worker.stages.export import ExportRunner
from worker.stages.kfold import KFoldRunner
from worker.stages.mine import MineRunner
from worker.stages.search import SearchRunner
from worker.stages.train import TrainRunner

RUNNERS: dict[str, type[StageRunner]] = {
    runner.kind.type: runner
    for runner in (TrainRunner, EvaluateRunner, MineRunner, ExportRunner, SearchRunner, KFoldRunner)
}
if set(RUNNERS) != set(KINDS):
    raise RuntimeError(f"stage kinds without a runner: {sorted(set(KINDS) - set(RUNNERS))}")
