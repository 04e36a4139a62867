"""Creating, describing and cancelling jobs: the operations the API and the one-shot CLI share."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

from pydantic import ValidationError
from sqlalchemy import Text, bindparam, cast, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from shared import fanout, studies
from shared.auth import Principal
from shared.datasets.check import check_dataset
from shared.db import get_engine
from shared.errors import Conflict, IllegalTransition, InvalidSpec, NotFound, PathOutsideRoot
from shared.models import Job, MetricRow, Stage, as_utc, utcnow
from shared.references import DatasetRef, ModelRef, is_fold_ref, resolve_dataset, resolve_model
from shared.schemas import JobCreate, JobPublic, Links, MetricRowPublic, StagePublic
from shared.schemas.jobs import ParentRef
from shared.settings import Settings
from shared.stage_kinds import Product, SubmitContext, kind, produces
from shared.stage_kinds.chaining import input_producers
from shared.states import (
    TERMINAL_JOB_STATES,
    JobState,
    StageState,
    cancel_job,
    move_stage,
    resume_job,
    reused_stage,
)
from shared.storage import job_dir_rel, safe_resolve, stage_dir_rel
from shared.urls import job_url


def request_hash(spec: JobCreate) -> str:
    canonical = json.dumps(spec.model_dump(mode="json", exclude_unset=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_pipeline(spec: JobCreate, dataset: DatasetRef, model: ModelRef) -> None:
    """Checks that need the whole pipeline: every input a stage consumes is produced by an earlier stage (or is
    the job's own model or dataset, where that will do), then each kind's own checks."""
    for index, stage in enumerate(spec.stages):
        field = f"stages.{index}"
        declared = kind(stage.type)
        for name, source in input_producers(spec.stages, index, f"{field}.").items():
            needs_weights = declared.inputs[name] is Product.WEIGHTS and not declared.accepts_model_config
            if needs_weights and source is None and not model.is_weights:
                raise InvalidSpec(
                    f"{stage.type} needs weights: put a train stage before it or start the job from a .pt or job:<id>",
                    field=f"{field}.{name}",
                )
        declared.check(stage, SubmitContext(dataset, model, spec.stages, index, field))


def owner_idempotency_key(owner: str, idempotency_key: str) -> str:
    """Keys are per owner: the same key from two owners names two jobs (and reveals nothing)."""
    return hashlib.sha256(f"{owner}\n{idempotency_key}".encode()).hexdigest()


def create_job(
    session: Session,
    settings: Settings,
    spec: JobCreate,
    principal: Principal,
    idempotency_key: str | None = None,
    reuse: Sequence[Stage] = (),
    parent: tuple[str, int, int] | None = None,
) -> tuple[Job, bool]:
    """Validate and store a job owned by ``principal``; its first stage to run is queued. Returns (job, created).

    A repeated Idempotency-Key with the same body returns the first job; with another body, 409. ``reuse``: succeeded
    stages of an earlier job that stand for this job's first stages (a re-run): they start succeeded, their results
    and folder those of the earlier stage, so later stages read the same files (nothing is copied). ``parent``:
    (job id, stage index, child index) of the fan-out stage this job is a child of (shared/fanout.py)."""
    digest = request_hash(spec)
    stored_key = None if idempotency_key is None else owner_idempotency_key(principal.owner, idempotency_key)
    if stored_key is not None:
        existing = session.scalar(select(Job).where(Job.idempotency_key == stored_key))
        if existing is not None:
            if existing.request_hash != digest:
                raise Conflict("Idempotency-Key was already used for a different request", field="Idempotency-Key")
            return existing, False
    dataset = resolve_dataset(settings, spec.dataset, session=session, principal=principal)
    model = resolve_model(settings, session, spec.model, principal=principal)
    check_pipeline(spec, dataset, model)
    for index, stage_spec in enumerate(spec.stages):
        if getattr(stage_spec, "continue_from", None):
            from shared.search_report import check_continuation

            check_continuation(session, stage_spec, principal, f"stages.{index}")
    if not is_fold_ref(spec.dataset):  # a fold lists files of a dataset its k-fold stage's job passed this gate with
        check_dataset(dataset, spec.dataset, settings.dataset_max_images)
    now = utcnow()
    job = Job(
        name=spec.name or f"{spec.stages[0].type}-{now:%Y%m%d-%H%M%S}",
        tags=list(spec.tags),
        state=JobState.QUEUED.value,
        dataset=spec.dataset,
        model=spec.model,
        spec=spec.model_dump(mode="json"),
        idempotency_key=stored_key,
        request_hash=digest,
        created_at=now,
        owner=principal.owner,
    )
    if parent is not None:
        job.parent_job_id, job.parent_stage_index, job.child_index = parent
    session.add(job)
    session.flush()
    for index, stage_spec in enumerate(spec.stages):
        stage = Stage(
            job_id=job.id,
            index=index,
            type=stage_spec.type,
            state=StageState.PENDING.value,
            spec=stage_spec.stored(),
            dir=stage_dir_rel(job.id, index, stage_spec.type),
            epochs=getattr(stage_spec, "epochs", None),
        )
        if index < len(reuse):
            _reuse(stage, reuse[index], job, now)
        elif index == len(reuse):
            move_stage(stage, StageState.QUEUED, now=now)
        job.stages.append(stage)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        if idempotency_key is None:
            raise
        return create_job(session, settings, spec, principal, idempotency_key)  # lost a race on the same key
    return job, True


def _reuse(stage: Stage, source: Stage, job: Job, now: datetime) -> None:
    reused_stage(stage, now=now)
    stage.dir = source.dir
    stage.results = source.results
    stage.epoch, stage.latest_metrics = source.epoch, source.latest_metrics
    stage.info = {**(source.info or {}), "reused_from": {"job": source.job_id, "stage": source.index}}
    weights = (source.results or {}).get(Product.WEIGHTS.results_key)
    if weights and produces(source.type, Product.WEIGHTS):
        job.best_weights = weights


def original_stage_spec(stage: Stage) -> dict:
    """A stage's spec as submitted (a gate retry changes the stored one; its first try keeps the original)."""
    tries = (stage.info or {}).get("gate", {}).get("tries") or []
    return dict(tries[0]["spec"]) if tries and "spec" in tries[0] else dict(stage.spec)


def rerun_job(
    session: Session, settings: Settings, source: Job, from_stage: int, principal: Principal,
    overrides: dict | None = None, name: str | None = None,
) -> Job:
    """A new job with ``source``'s pipeline that reuses the outputs of its stages before ``from_stage`` (they must
    have succeeded) and runs the rest, with ``overrides`` (shared/presets: epochs, imgsz, batch, seed, stages)
    applied to the stages it runs. Stored and validated like any job; the first stage it runs is queued."""
    from shared.presets import PresetError, apply_overrides

    if not 0 <= from_stage < len(source.stages):
        raise InvalidSpec(
            f"job {source.id} has stages 0..{len(source.stages) - 1}; from_stage {from_stage} is not one of them",
            field="from_stage",
        )
    for stage in source.stages[:from_stage]:
        if stage.state != StageState.SUCCEEDED.value:
            raise Conflict(
                f"stage {stage.index} ({stage.type}) of job {source.id} is {stage.state}: only succeeded stages' "
                f"outputs can be reused; re-run from stage {stage.index} or earlier",
                field="from_stage",
            )
    stages = [original_stage_spec(stage) for stage in source.stages]
    try:
        apply_overrides(stages, overrides or {}, first=from_stage)
    except PresetError as exc:
        raise InvalidSpec(str(exc).split(": ", 1)[-1], field=str(exc).split(": ", 1)[0]) from None
    body = {
        "name": name or f"{source.name} (re-run from stage {from_stage})"[:200],
        "tags": list(source.tags or []),
        "dataset": source.dataset,
        "model": source.model,
        "stages": stages,
    }
    try:
        spec = JobCreate.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ()))
        raise InvalidSpec(str(first.get("msg", "")).removeprefix("Value error, "), field=field) from None
    job, _ = create_job(session, settings, spec, principal, reuse=source.stages[:from_stage])
    return job


def get_job(session: Session, job_id: str, principal: Principal) -> Job:
    """The job if ``principal`` may see it; another owner's job is 'not found', like a missing one."""
    job = session.get(Job, job_id, options=[selectinload(Job.stages)])
    if job is None or not principal.can_see(job.owner):
        raise NotFound(f"job {job_id} not found", field="job_id")
    return job


_JOB_VIEW_COLUMNS = [c for c in Job.__table__.c if c.name not in ("spec", "request_hash", "idempotency_key")]
_JOB_BY_ID = select(*_JOB_VIEW_COLUMNS).where(Job.id == bindparam("job_id"))
_STAGES_OF_JOB = select(Stage.__table__).where(Stage.job_id == bindparam("job_id")).order_by(Stage.index)


def read_job(job_id: str, principal: Principal) -> SimpleNamespace:
    """A job and its stages as plain attribute bags, read with two Core queries and no ORM session:
    the read path for the most polled routes (ORM loading costs about 7x more per request).
    Scoped like ``get_job``."""
    with get_engine().connect() as connection:
        job = connection.execute(_JOB_BY_ID, {"job_id": job_id}).mappings().first()
        if job is None or not principal.can_see(job["owner"]):
            raise NotFound(f"job {job_id} not found", field="job_id")
        stages = connection.execute(_STAGES_OF_JOB, {"job_id": job_id}).mappings()
        return SimpleNamespace(**job, stages=[SimpleNamespace(**stage) for stage in stages])


def list_jobs(
    session: Session,
    principal: Principal,
    state: str | None,
    limit: int,
    offset: int,
    *,
    tags: Sequence[str] = (),
    name: str | None = None,
    owner: str | None = None,
    parent: str | None = None,
    top_level: bool = False,
) -> tuple[list[Job], int]:
    """A page of the jobs ``principal`` may see, newest first, and how many there are in all. ``tags``: jobs
    carrying every one of them; ``name``: a case-insensitive part of the name; ``owner``: one owner's jobs (only
    an admin sees other owners', so anyone else naming another owner gets nothing); ``parent``: the child jobs
    (search trials, k-fold folds) of that job; ``top_level``: only jobs that are no job's child.

    Filtered in SQL, the same on SQLite and PostgreSQL: a tag is looked for as its quoted JSON string in the
    text of the ``tags`` JSON array. That is exact because a tag cannot hold a quote, a backslash, a comma or a
    space (shared/schemas/jobs.py ``Tag``), so a quote in that text only ever opens or closes a whole tag."""
    if owner is not None and not principal.is_admin and owner != principal.owner:
        return [], 0
    query = principal.scope(select(Job), Job.owner)
    if owner is not None:
        query = query.where(Job.owner == owner)
    if state:
        query = query.where(Job.state == state)
    for tag in dict.fromkeys(tags):
        query = query.where(cast(Job.tags, Text).contains(json.dumps(tag), autoescape=True))
    if name:
        query = query.where(Job.name.icontains(name, autoescape=True))
    if parent is not None:
        query = query.where(Job.parent_job_id == parent)
    if top_level:
        query = query.where(Job.parent_job_id.is_(None))
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.options(selectinload(Job.stages)).order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    jobs = session.scalars(page).all()
    return list(jobs), count


def delete_job(session: Session, settings: Settings, job: Job, keep_artifacts: bool = False) -> list[str]:
    """Forget a finished job: its row, its stages and their metric rows, and (unless ``keep_artifacts``) its folder
    ``jobs/<id>/`` under the artifacts root. The caller has checked that the principal may see the job.

    Refused (409) for a queued or running job (cancel it first), for a job another job's stage reuses the
    outputs of (a re-run: that stage's folder is in this job's; unless ``keep_artifacts``), and for a job an
    unfinished job starts from (model ``job:<id>``, or a file in this job's folder unless ``keep_artifacts``).
    The delete is a compare-and-set on the job's state, so a job resumed meanwhile is not deleted. A child job
    (search trial, k-fold fold) is deleted only with its parent, which takes its children along. Returns the ids
    of the jobs deleted."""
    _check_deletable(job.id, job.state)
    if job.parent_job_id is not None and session.get(Job, job.parent_job_id) is not None:
        raise Conflict(
            f"job {job.id} is child {job.child_index} of stage {job.parent_stage_index} of job {job.parent_job_id}, "
            "whose results point into it; delete that job (it deletes its children)",
            field="job_id",
        )
    for kid in fanout.children(session, job.id):
        _check_deletable(kid.id, kid.state)
    searches = [stage.index for stage in job.stages if stage.type == "search"]
    child_folders: list[str] = []
    for kid in fanout.children(session, job.id):
        child_folders += _delete_child(session, kid)
    folder = job_dir_rel(job.id)
    if not keep_artifacts:
        reuser = session.execute(
            select(Stage.job_id, Stage.index, Stage.dir)
            .where(Stage.dir.startswith(f"{folder}/", autoescape=True), Stage.job_id != job.id)
            .order_by(Stage.job_id, Stage.index)
            .limit(1)
        ).first()
        if reuser is not None:
            raise Conflict(
                f"job {job.id} cannot be deleted with its artifacts: stage {reuser.index} of job {reuser.job_id} "
                f"reuses its outputs ({reuser.dir}); delete job {reuser.job_id} first, or pass keep_artifacts=true "
                "to forget this job and leave its folder",
                field="job_id",
            )
    starts_from = Job.model == f"job:{job.id}"
    if not keep_artifacts:
        starts_from = starts_from | Job.model.startswith(f"{folder}/", autoescape=True)
    dependent = session.scalar(
        select(Job.id)
        .where(starts_from, Job.id != job.id, Job.state.not_in([s.value for s in TERMINAL_JOB_STATES]))
        .order_by(Job.created_at)
        .limit(1)
    )
    if dependent is not None:
        raise Conflict(
            f"job {job.id} cannot be deleted: unfinished job {dependent} starts from its weights", field="job_id"
        )
    job_id, stage_ids = job.id, select(Stage.id).where(Stage.job_id == job.id).scalar_subquery()
    unsynchronized = {"synchronize_session": False}
    session.execute(delete(MetricRow).where(MetricRow.stage_id.in_(stage_ids)).execution_options(**unsynchronized))
    session.execute(delete(Stage).where(Stage.job_id == job_id).execution_options(**unsynchronized))
    deleted = session.execute(
        delete(Job)
        .where(Job.id == job_id, Job.state.in_([s.value for s in TERMINAL_JOB_STATES]))
        .execution_options(**unsynchronized)
    ).rowcount
    if deleted != 1:  # resumed, or deleted by another request, since it was read
        session.rollback()
        state = session.scalar(select(Job.state).where(Job.id == job_id))
        if state is None:
            raise NotFound(f"job {job_id} not found", field="job_id")
        _check_deletable(job_id, state)
        raise Conflict(f"job {job_id} changed while it was being deleted; try again", field="job_id")
    session.commit()
    session.expunge_all()
    deleted_ids = [job_id, *(Path(f).name for f in child_folders)]
    for index in searches:  # the study goes with its job; a storage that is away leaves it, harmlessly
        with contextlib.suppress(Exception):
            studies.delete_study(settings, job_id, index)
    if not keep_artifacts:
        for removed in (*child_folders, folder):
            try:
                target = safe_resolve(settings.artifacts_root, removed, what="job folder")
            except (NotFound, PathOutsideRoot):
                continue
            shutil.rmtree(target, ignore_errors=True)
    return deleted_ids


def _delete_child(session: Session, kid: Job) -> list[str]:
    """A child goes with its parent: its own children and its rows. Returns the folders to remove once committed."""
    folders = [job_dir_rel(kid.id)]
    for grandchild in fanout.children(session, kid.id):
        folders += _delete_child(session, grandchild)
    stage_ids = select(Stage.id).where(Stage.job_id == kid.id).scalar_subquery()
    unsynchronized = {"synchronize_session": False}
    session.execute(delete(MetricRow).where(MetricRow.stage_id.in_(stage_ids)).execution_options(**unsynchronized))
    session.execute(delete(Stage).where(Stage.job_id == kid.id).execution_options(**unsynchronized))
    session.execute(delete(Job).where(Job.id == kid.id).execution_options(**unsynchronized))
    return folders


def _check_deletable(job_id: str, state: str) -> None:
    if not JobState(state).is_terminal():
        raise IllegalTransition(
            f"job {job_id} is {state}: only a finished job (succeeded, failed, cancelled or gated) can be "
            "deleted; cancel it first",
            field="job_id",
        )


def request_cancel(session: Session, job: Job) -> Job:
    """Ask a job to stop (shared/states.py ``cancel_job``), and its child jobs with it (a search's trials, a
    k-fold's folds), and commit."""
    cancel_job(session, job)
    fanout.cancel_children(session, job)
    session.commit()
    return job


def resume(session: Session, job: Job) -> Stage:
    """Queue a failed or cancelled job again from its first unfinished stage (train stages continue from
    their last.pt). Returns the stage to send to the broker; 409 for a job in any other state, and while child
    jobs it cancelled are still stopping (the resumed stage resumes the children that stopped with it)."""
    stopping = fanout.stopping_children(session, job)
    if stopping:
        raise IllegalTransition(
            f"job {job.id} has {len(stopping)} child job(s) still stopping ({', '.join(stopping[:3])}); "
            "resume it once they have ended",
            field="job_id",
        )
    stage = resume_job(job)
    session.commit()
    return stage


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return round((as_utc(end or utcnow()) - as_utc(start)).total_seconds(), 3)


def stage_public(stage: Stage) -> StagePublic:
    duration = _seconds(stage.started_at, stage.finished_at)
    eta = None
    if stage.state == StageState.RUNNING.value and stage.epochs and stage.epoch and duration is not None:
        eta = round(duration / stage.epoch * (stage.epochs - stage.epoch), 1)
    return StagePublic(
        index=stage.index,
        type=stage.type,
        name=stage.spec.get("name"),
        state=stage.state,
        spec=stage.spec,
        dir=stage.dir,
        epoch=stage.epoch,
        epochs=stage.epochs,
        latest_metrics=stage.latest_metrics,
        results=stage.results,
        info=stage.info,
        error=stage.error,
        attempt=stage.attempt,
        worker_id=stage.worker_id,
        queued_at=stage.queued_at,
        started_at=stage.started_at,
        finished_at=stage.finished_at,
        duration_s=duration,
        eta_s=eta,
    )


def links(job_id: str) -> Links:
    base = job_url(job_id)
    return Links(
        self=base,
        metrics=f"{base}/metrics",
        events=f"{base}/events",
        artifacts=f"{base}/artifacts",
        weights=f"{base}/weights",
        cancel=f"{base}/cancel",
        resume=f"{base}/resume",
    )


PROGRESS_UNITS = {"search": "trials ended", "kfold": "folds ended"}
"""What a stage's epoch/epochs count, for the kinds where it is not epochs."""


def _progress(job: Job) -> tuple[int | None, str]:
    total = len(job.stages)
    current = next((s for s in job.stages if not StageState(s.state).is_terminal()), None)
    if current is None:
        return None, f"{job.state}: {total}/{total} stages done" if job.state == "succeeded" else job.state
    text = f"stage {current.index + 1}/{total} {current.type} {current.state}"
    if current.epochs:
        unit = PROGRESS_UNITS.get(current.type, "epoch")
        text += f": {unit} {current.epoch}/{current.epochs}"
    return current.index, text


def job_public(job: Job) -> JobPublic:
    current, progress = _progress(job)
    return JobPublic(
        id=job.id,
        name=job.name,
        tags=job.tags,
        state=job.state,
        dataset=job.dataset,
        model=job.model,
        owner=job.owner,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        duration_s=_seconds(job.started_at, job.finished_at),
        cancel_requested=job.cancel_requested_at is not None,
        error=job.error,
        current_stage=current,
        progress=progress,
        best_weights=job.best_weights,
        parent=None if job.parent_job_id is None else ParentRef(
            job_id=job.parent_job_id, stage_index=job.parent_stage_index, index=job.child_index
        ),
        stages=[stage_public(s) for s in job.stages],
        links=links(job.id),
    )


def metric_rows(session: Session, job: Job) -> list[MetricRowPublic]:
    rows = session.execute(
        select(MetricRow, Stage.index, Stage.type)
        .join(Stage, MetricRow.stage_id == Stage.id)
        .where(Stage.job_id == job.id)
        .order_by(Stage.index, MetricRow.epoch)
    ).all()
    return [
        MetricRowPublic(
            stage_index=index, stage_type=type_, epoch=row.epoch, values=row.values, created_at=row.created_at
        )
        for row, index, type_ in rows
    ]


def summary(job: Job) -> dict:
    """``summary.json``: the whole job in one file, written when it ends."""
    public = job_public(job)
    return {
        "job": public.model_dump(mode="json", exclude={"links"}),
        "final_metrics": next(
            (s.results.get("metrics") for s in reversed(job.stages) if s.results and s.results.get("metrics")), None
        ),
        "written_at": utcnow().isoformat(),
    }
