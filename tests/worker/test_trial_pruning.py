"""A search trial's train stage reports each epoch to its Optuna trial and is told to stop below the median of the
earlier trials (the study in the embedded database's storage, the jobs as the search stage creates them)."""

from __future__ import annotations

import optuna

from shared import fanout, jobs
from shared.auth import LOCAL_ADMIN
from shared.db import session_scope
from shared.models import Job
from shared.schemas import JobCreate
from worker.stages.search import distribution, open_study
from worker.trial_pruning import TrialPruning

SEARCH = {
    "type": "search", "trials": 3, "metric": "mAP50", "pruner_startup_trials": 1, "pruner_warmup_epochs": 0,
    "train": {"epochs": 3, "imgsz": 64, "batch": 4}, "space": {"box": {"low": 2.0, "high": 9.0}},
}


def a_trial_after_a_good_one(settings, dataset: str, search: dict = SEARCH):
    spec = JobCreate.model_validate({"dataset": dataset, "stages": [search]})
    with session_scope() as session:
        parent, _ = jobs.create_job(session, settings, spec, LOCAL_ADMIN)
        stage_spec = spec.stages[0]
        study = open_study(settings, parent.id, 0, stage_spec)
        distributions = {name: distribution(p) for name, p in stage_spec.space.items()}
        study.add_trial(optuna.trial.create_trial(
            params={"box": 5.0}, distributions=distributions, value=0.9, intermediate_values={1: 0.8, 2: 0.9}))
        trial = study.ask(distributions)
        child_spec = JobCreate.model_validate({"dataset": dataset, "stages": [
            {"type": "train", "epochs": 3, "imgsz": 64, "batch": 4, "box": trial.params["box"]}]})
        child = fanout.create_child(session, settings, session.get(Job, parent.id), 0, trial.number, child_spec)
        return child.stages[0].id, study, trial.number


def test_a_trial_below_the_median_is_pruned_and_one_above_goes_on(embedded, tiny_dataset):
    stage_id, study, number = a_trial_after_a_good_one(embedded, tiny_dataset)
    pruning = TrialPruning.for_stage(embedded, stage_id)
    assert pruning is not None and pruning.number == number and pruning.metric_key == "metrics/mAP50(B)"
    assert pruning.after_epoch({"epoch": 1, "metrics/mAP50(B)": 0.85}) is None  # above 0.8 at epoch 1
    decision = pruning.after_epoch({"epoch": 2, "metrics/mAP50(B)": 0.1})
    assert decision["epoch"] == 2 and decision["value"] == 0.1 and "below the median" in decision["reason"]
    reported = next(t for t in study.get_trials() if t.number == number).intermediate_values
    assert reported == {1: 0.85, 2: 0.1}
    assert pruning.after_epoch({"epoch": 2, "metrics/mAP50(B)": 0.95}) is not None  # a repeat keeps the first value


def test_no_pruning_outside_a_search_or_with_the_pruner_off(embedded, tiny_dataset):
    stage_id, _, _ = a_trial_after_a_good_one(embedded, tiny_dataset, {**SEARCH, "pruner": "none"})
    assert TrialPruning.for_stage(embedded, stage_id) is None
    spec = JobCreate.model_validate({"dataset": tiny_dataset, "stages": [{"type": "train", "epochs": 1}]})
    with session_scope() as session:
        plain, _ = jobs.create_job(session, embedded, spec, LOCAL_ADMIN)
        assert TrialPruning.for_stage(embedded, plain.stages[0].id) is None


def test_a_pruned_trial_job_reads_as_pruned(embedded, tiny_dataset):
    stage_id, _, _ = a_trial_after_a_good_one(embedded, tiny_dataset)
    with session_scope() as session:
        from shared.models import Stage
        from shared.states import JobState, StageState, move_job, move_stage

        stage = session.get(Stage, stage_id)
        move_stage(stage, StageState.RUNNING)
        stage.info = {"pruned": {"epoch": 2, "reason": "below"}}
        move_stage(stage, StageState.CANCELLED)
        move_job(stage.job, JobState.CANCELLED, error="cancelled by request")
        assert fanout.outcome(stage.job).status == "pruned"
