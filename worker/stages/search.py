"""The search stage: an Optuna study whose trials are child jobs (train + evaluate), a few at a time.

Each run of this stage takes one step and hands back the worker: it tells the study how every ended trial did,
creates child jobs for new trials up to ``parallel`` running, and waits (worker/stages/base.py ``StageWaiting``)
until a child ends and queues it again. The study is in the database (shared/studies.py) and the trials are jobs,
so a killed worker loses at most one epoch of the trial it was training (that child resumes from its last.pt)
and nothing of the search. The children report each epoch's metric to their trial and stop when the median
pruner says so (worker/trial_pruning.py)."""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import ValidationError

from shared import fanout
from shared.db import session_scope
from shared.errors import InvalidSpec, StagerunError
from shared.gates import metric_value
from shared.models import Job
from shared.schemas import JobCreate
from shared.search_report import importance, trial_job, trials_table
from shared.search_space import SearchParam, canonical, trial_train_spec
from shared.stage_kinds.search import KIND as SEARCH
from shared.stage_kinds.search import SearchStage
from shared.studies import storage as study_storage
from shared.studies import study_name
from worker.stages.base import StageRunner, StageWaiting


def distribution(param: SearchParam):
    import optuna

    if param.choices is not None:
        return optuna.distributions.CategoricalDistribution(param.choices)
    if param.int_:
        return optuna.distributions.IntDistribution(int(param.low), int(param.high), log=param.log,
                                                    step=int(param.step or 1))
    return optuna.distributions.FloatDistribution(param.low, param.high, log=param.log, step=param.step)


def make_pruner(spec: SearchStage):
    import optuna

    if spec.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=spec.pruner_startup_trials, n_warmup_steps=spec.pruner_warmup_epochs
    )


def make_sampler(spec: SearchStage, step: int = 0):
    """The sampler of one step of the search. Each step runs in a process of its own, so a seeded sampler is
    seeded with the seed and the number of trials asked so far: the same search asks the same values, and no
    two steps start the same random sequence (which would ask the same values again)."""
    import optuna

    seed = None if spec.seed is None else (spec.seed * 1_000_003 + step) % 2**32
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def open_study(settings, job_id: str, stage_index: int, spec: SearchStage):
    import optuna

    study = optuna.create_study(
        study_name=study_name(job_id, stage_index),
        storage=study_storage(settings),
        direction="maximize",
        pruner=make_pruner(spec),
        load_if_exists=True,
    )
    study.sampler = make_sampler(spec, len(study.get_trials(deepcopy=False)))
    return study


def trial_value(job: Job, spec: SearchStage) -> float | None:
    """The objective of a succeeded trial: its evaluate stage's metric (overall, or the one class)."""
    evaluate = job.stages[-1]
    value = metric_value((evaluate.results or {}).get("metrics"), spec.metric, spec.class_)
    return None if value is None or not math.isfinite(value) else float(value)


class SearchRunner(StageRunner):
    kind = SEARCH

    def run(self) -> dict:
        from optuna.trial import TrialState

        context, spec = self.context, self.context.spec
        study = open_study(context.settings, context.job_id, context.index, spec)
        distributions = {name: distribution(param) for name, param in spec.space.items()}
        carried = self._carry_over(study, spec, distributions) if spec.continue_from else 0
        with session_scope() as session:
            parent = session.get(Job, context.job_id)
            kids = {kid.child_index: kid for kid in fanout.children(session, parent.id, context.index)}
            running: list[str] = []
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                kid = kids.get(trial.number)
                if kid is None:  # asked, then the process died before its job was stored
                    try:
                        kid = self._create_trial(session, parent, trial.number, trial.params)
                    except StagerunError as exc:
                        session.rollback()
                        study._storage.set_trial_user_attr(trial._trial_id, "error", exc.message)
                        study.tell(trial.number, state=TrialState.FAIL)
                        continue
                    study._storage.set_trial_user_attr(trial._trial_id, "job_id", kid.id)
                if self._settle_trial(session, study, trial.number, kid, spec):
                    running.append(kid.id)
            while len(study.trials) < spec.trials + carried and len(running) < spec.parallel:
                study.sampler = make_sampler(spec, len(study.trials))
                trial = study.ask(distributions)
                try:
                    kid = self._create_trial(session, parent, trial.number, trial.params)
                except StagerunError as exc:  # a combination of values the train stage refuses
                    session.rollback()
                    trial.set_user_attr("error", exc.message)
                    study.tell(trial.number, state=TrialState.FAIL)
                    continue
                trial.set_user_attr("job_id", kid.id)
                running.append(kid.id)
            session.commit()
            context.reporter.progress(self._ended(study) - carried, spec.trials)
            if running:
                raise StageWaiting(running)
            return self._results(session, study, parent, spec)

    def _carry_over(self, study, spec: SearchStage, distributions: dict) -> int:
        """Add the earlier search's completed and pruned trials to this study, once (each is added only if it is
        not there yet, so a step that died halfway finishes the job). Returns how many this study carries."""
        import optuna
        from optuna.trial import TrialState

        job_id, _, index = spec.continue_from.partition(":")
        with session_scope() as session:
            from shared.search_report import fanout_stage

            source_job = session.get(Job, job_id)
            if source_job is None:
                raise RuntimeError(f"continue_from: job {job_id} no longer exists")
            source_index = fanout_stage(source_job, "search", int(index) if index else None).index
        earlier = optuna.load_study(study_name=study_name(job_id, source_index),
                                    storage=study_storage(self.context.settings))
        present = {(t.user_attrs.get("from_job"), t.user_attrs.get("from_number"))
                   for t in study.get_trials(deepcopy=False) if t.user_attrs.get("from_job")}
        kept = (TrialState.COMPLETE, TrialState.PRUNED)
        for trial in earlier.get_trials(deepcopy=False, states=kept):
            origin = (trial.user_attrs.get("from_job") or job_id,
                      trial.user_attrs.get("from_number", trial.number))
            if origin in present or set(trial.params) != set(distributions):
                continue
            try:
                carried = optuna.trial.create_trial(
                    params=trial.params, distributions=distributions, value=trial.value,
                    intermediate_values=trial.intermediate_values, state=trial.state,
                    user_attrs={"job_id": trial.user_attrs.get("job_id"), "from_job": origin[0],
                                "from_number": origin[1]},
                )
            except ValueError:  # a value outside this search's range: that trial says nothing about this space
                continue
            study.add_trial(carried)
        return sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("from_job"))

    @staticmethod
    def _ended(study) -> int:
        from optuna.trial import TrialState

        return sum(t.state != TrialState.RUNNING for t in study.get_trials(deepcopy=False))

    def _settle_trial(self, session, study, number: int, kid: Job, spec: SearchStage) -> bool:
        """Tell the study how an ended trial did; True while it still runs (a stopped one is resumed)."""
        from optuna.trial import TrialState

        result = fanout.outcome(kid)
        if result.status == "running":
            return True
        if result.status == "stopped":
            fanout.resume_child(session, kid)
            return True
        if result.status == "succeeded" and (value := trial_value(kid, spec)) is not None:
            study.tell(number, value)
        elif result.status == "pruned":
            study.tell(number, state=TrialState.PRUNED)
        else:
            study.tell(number, state=TrialState.FAIL)
        return False

    def _create_trial(self, session, parent: Job, number: int, params: dict) -> Job:
        context, spec = self.context, self.context.spec
        train = trial_train_spec(spec.train_base(), params)
        evaluate = {"type": "evaluate", "split": spec.split, "imgsz": spec.imgsz or train.get("imgsz", 640),
                    "plots": False}
        if "batch" in train and isinstance(train["batch"], int) and train["batch"] > 0:
            evaluate["batch"] = train["batch"]
        try:
            job_spec = JobCreate(
                name=f"{parent.name} trial {number}",
                tags=[*parent.tags[:30], f"search:{parent.id}"],
                dataset=parent.dataset,
                model=self._trial_model(parent),
                stages=[train, evaluate],
            )
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise InvalidSpec(f"trial {number}: {where}: {problem['msg']}", field=where) from None
        return fanout.create_child(session, context.settings, parent, context.index, number, job_spec)

    def _trial_model(self, parent: Job) -> str:
        weights = self.context.weights
        if weights is None or weights == self.context.model.source:
            return parent.model
        return self.context.relative(Path(weights))

    def _results(self, session, study, parent: Job, spec: SearchStage) -> dict:
        from optuna.trial import TrialState

        table = trials_table(session, study, parent.id, self.context.index)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            failed = [row for row in table if row["state"] == "FAIL"]
            reason = failed[0]["error"] if failed and failed[0].get("error") else "no trial completed"
            raise RuntimeError(f"the search has no completed trial ({len(table)} ran): {reason}")
        best = study.best_trial
        kids = {kid.child_index: kid for kid in fanout.children(session, parent.id, self.context.index)}
        best_job = trial_job(session, best, kids)
        train_stage = best_job.stages[0]
        return {
            "weights": (train_stage.results or {}).get("weights"),
            "metrics": (best_job.stages[-1].results or {}).get("metrics"),
            "best": {"number": best.number, "value": best.value, "params": best.params, "job_id": best_job.id},
            "objective": {"metric": spec.metric, "class": spec.class_, "split": spec.split, "direction": "maximize"},
            "trials": table,
            "importance": importance(study),
            "study": study.study_name,
            "space": {canonical(name): param.model_dump(exclude_none=True, by_alias=True)
                      for name, param in spec.space.items()},
        }
