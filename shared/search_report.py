"""What a search stage's study says: the trials table and each parameter's importance. Read by the search stage
when it ends and by the API while it runs (straight from the study and the child jobs)."""

from __future__ import annotations

from shared import fanout


def trial_job(session, trial, kids: dict):
    """The job that ran a trial: this search's child, or, for a trial carried over by ``continue_from``, the
    earlier search's child it names."""
    from shared.models import Job

    carried = trial.user_attrs.get("from_job")
    if carried is None:
        return kids.get(trial.number)
    job_id = trial.user_attrs.get("job_id")
    return None if job_id is None else session.get(Job, job_id)


def trials_table(session, study, job_id: str, stage_index: int) -> list[dict]:
    """One row per trial: number, state, value, params, its job, epochs run and where it was pruned (and, for a
    trial carried over from an earlier search, that search's job)."""
    kids = {kid.child_index: kid for kid in fanout.children(session, job_id, stage_index)}
    rows = []
    for trial in study.get_trials(deepcopy=False):
        kid = trial_job(session, trial, kids)
        train = kid.stages[0] if kid is not None and kid.stages else None
        rows.append({
            "number": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            "params": trial.params,
            "job_id": None if kid is None else kid.id,
            "job_state": None if kid is None else kid.state,
            "epochs": None if train is None else train.epoch,
            "pruned_at_epoch": None if train is None else ((train.info or {}).get("pruned") or {}).get("epoch"),
            "error": trial.user_attrs.get("error") if kid is None
            else None if kid.state in ("succeeded", "running", "queued") else kid.error,
            "intermediate": {str(step): value for step, value in sorted(trial.intermediate_values.items())},
            "from_job": trial.user_attrs.get("from_job"),
        })
    return rows


def importance(study) -> dict | None:
    """Each parameter's share of the objective's variance over the completed trials (Optuna's fANOVA), or None
    with fewer than two completed trials or when they all scored the same."""
    from optuna.importance import get_param_importances
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2 or len({trial.value for trial in complete}) < 2:
        return None  # nothing to explain: every completed trial scored the same
    try:
        return {name: round(float(share), 4) for name, share in get_param_importances(study).items()}
    except (RuntimeError, ValueError, ImportError):  # e.g. every completed trial had the same value
        return None


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def fanout_stage(job, stage_type: str, stage_index: int | None, field: str = "stage"):
    """The job's ``stage_type`` stage: the one at ``stage_index``, or its first of that kind."""
    from shared.errors import InvalidSpec, NotFound

    stages = [s for s in job.stages if s.type == stage_type]
    if stage_index is not None:
        chosen = next((s for s in job.stages if s.index == stage_index), None)
        if chosen is None:
            raise NotFound(f"job {job.id} has no stage {stage_index}", field=field)
        if chosen.type != stage_type:
            raise InvalidSpec(
                f"stage {stage_index} of job {job.id} is {_a(chosen.type)} stage, not {_a(stage_type)} stage",
                field=field,
            )
        return chosen
    if not stages:
        raise NotFound(f"job {job.id} has no {stage_type} stage", field=field)
    return stages[0]


def search_view(session, settings, job, stage) -> dict:
    """A search stage as it stands: its trials (live from the study while it runs), the best, the importances."""
    from pydantic import TypeAdapter

    from shared.schemas import StageSpec
    from shared.studies import load_study

    spec = TypeAdapter(StageSpec).validate_python(stage.spec)
    view = {
        "job_id": job.id,
        "stage_index": stage.index,
        "state": stage.state,
        "objective": {"metric": spec.metric, "class": spec.class_, "split": spec.split, "direction": "maximize"},
        "trials_planned": spec.trials,
        "parallel": spec.parallel,
        "trials": [],
        "best": None,
        "importance": None,
    }
    study = load_study(settings, job.id, stage.index)
    if study is None:
        return view
    from optuna.trial import TrialState

    view["trials"] = trials_table(session, study, job.id, stage.index)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete:
        best = max(complete, key=lambda trial: trial.value)
        kid = trial_job(session, best, {k.child_index: k for k in fanout.children(session, job.id, stage.index)})
        view["best"] = {"number": best.number, "value": best.value, "params": best.params,
                        "job_id": None if kid is None else kid.id}
    view["importance"] = (stage.results or {}).get("importance") if stage.results else importance(study)
    return view


def best_trial_job_spec(session, settings, job, stage) -> dict:
    """A new job's body: the best trial's train stage and its evaluate stage, on the search's dataset and model."""
    from shared.errors import Conflict
    from shared.models import Job

    view = search_view(session, settings, job, stage)
    if view["best"] is None or view["best"]["job_id"] is None:
        raise Conflict(f"the search in stage {stage.index} of job {job.id} has no completed trial yet", field="job_id")
    trial = session.get(Job, view["best"]["job_id"])
    stages = []
    for trial_stage in trial.stages:
        spec = dict(trial_stage.spec)
        spec.pop("name", None)
        stages.append(spec)
    return {
        "name": f"{job.name} best trial {view['best']['number']}",
        "tags": [t for t in job.tags if not t.startswith(("search:", "kfold:"))][:31] + [f"best-of:{job.id}"],
        "dataset": trial.dataset,
        "model": trial.model,
        "stages": stages,
    }


def check_continuation(session, stage, principal, field: str) -> None:
    """``continue_from`` names a job ``principal`` may see whose search stage varied the same parameters."""
    from pydantic import TypeAdapter

    from shared.errors import InvalidSpec
    from shared.models import Job
    from shared.schemas import StageSpec
    from shared.search_space import canonical

    job_id, _, index = stage.continue_from.partition(":")
    earlier = session.get(Job, job_id)
    if earlier is None or not principal.can_see(earlier.owner):
        raise InvalidSpec(f"continue_from: job {job_id} not found", field=f"{field}.continue_from")
    try:
        source = fanout_stage(earlier, "search", int(index) if index else None, f"{field}.continue_from")
    except (InvalidSpec, Exception) as exc:
        message = getattr(exc, "message", str(exc))
        raise InvalidSpec(f"continue_from: {message}", field=f"{field}.continue_from") from None
    spec = TypeAdapter(StageSpec).validate_python(source.spec)
    theirs, ours = {canonical(n) for n in spec.space}, {canonical(n) for n in stage.space}
    if theirs != ours:
        raise InvalidSpec(
            f"continue_from: that search varied {', '.join(sorted(theirs))}; this one varies {', '.join(sorted(ours))}"
            " (a continued search keeps the parameters)",
            field=f"{field}.continue_from",
        )
    if spec.metric != stage.metric or spec.class_ != stage.class_ or spec.split != stage.split:
        raise InvalidSpec("continue_from: that search maximized another objective (metric, class or split)",
                          field=f"{field}.continue_from")


def kfold_view(session, job, stage) -> dict:
    """A k-fold stage as it stands: each fold's job, state and overall metrics; the spread once every fold ended."""
    results = stage.results or {}
    kids = fanout.children(session, job.id, stage.index)
    folds = []
    for kid in kids:
        evaluate = kid.stages[-1] if kid.stages else None
        metrics = (evaluate.results or {}).get("metrics") if evaluate is not None else None
        folds.append({"fold": kid.child_index, "job_id": kid.id, "state": kid.state,
                      "overall": None if metrics is None else metrics["overall"]})
    return {
        "job_id": job.id,
        "stage_index": stage.index,
        "state": stage.state,
        "k": (stage.spec or {}).get("folds", 5),
        "folds": folds,
        "summary": results.get("summary"),
    }
