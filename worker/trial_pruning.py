"""A search trial's train stage reports each epoch's metric to its Optuna trial and stops when the search's
pruner says so (median pruner: below the median of the earlier trials at the same epoch).

The value reported is the epoch's row as stored in the database (the results.csv column of the search's metric,
overall: results.csv has no per-class columns). A resumed stage reports an epoch again; Optuna keeps the first
value and ignores the repeat."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import TypeAdapter

from shared.db import session_scope
from shared.models import Job, Stage
from shared.schemas import StageSpec
from shared.stage_kinds.search import EPOCH_METRIC_KEYS, SearchStage

log = logging.getLogger(__name__)


@dataclass
class TrialPruning:
    """The trial a train stage belongs to, if it is the first stage of a search trial."""

    study: object
    trial_id: int
    number: int
    metric_key: str

    @classmethod
    def for_stage(cls, settings, stage_id: int) -> TrialPruning | None:
        from optuna.trial import TrialState

        from shared.studies import load_study
        from worker.stages.search import make_pruner

        with session_scope() as session:
            stage = session.get(Stage, stage_id)
            job = stage.job
            if job.parent_job_id is None or stage.index != 0:
                return None
            parent = session.get(Job, job.parent_job_id)
            parent_stage = next((s for s in parent.stages if s.index == job.parent_stage_index), None)
            if parent_stage is None or parent_stage.type != "search":
                return None
            spec: SearchStage = TypeAdapter(StageSpec).validate_python(parent_stage.spec)
            parent_id, index, number = parent.id, parent_stage.index, job.child_index
        if spec.pruner == "none":
            return None
        study = load_study(settings, parent_id, index, pruner=make_pruner(spec))
        if study is None:
            return None
        trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
        if trial is None or trial.state != TrialState.RUNNING:
            return None
        return cls(study=study, trial_id=trial._trial_id, number=number, metric_key=EPOCH_METRIC_KEYS[spec.metric])

    def after_epoch(self, row: dict) -> dict | None:
        """Report the epoch's metric; the pruning decision as a dict (for ``stage.info``) when the trial should stop."""
        import optuna

        value = row.get(self.metric_key)
        if not isinstance(value, int | float):
            return None
        epoch = int(row["epoch"])
        trial = optuna.trial.Trial(self.study, self.trial_id)
        try:
            trial.report(float(value), epoch)
        except (RuntimeError, ValueError) as exc:  # the trial was ended elsewhere
            log.warning("trial %s: cannot report epoch %s: %s", self.number, epoch, exc)
            return None
        if not trial.should_prune():
            return None
        return {"epoch": epoch, "value": float(value), "metric": self.metric_key,
                "reason": f"{self.metric_key} {value:.4f} at epoch {epoch} is below the median of earlier trials"}
