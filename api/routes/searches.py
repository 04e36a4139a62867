"""The fan-out stages' results: a search's trials, best trial and parameter importances (live while it runs), the
best trial submitted as a job of its own, and a k-fold stage's folds and per-class spread."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from api.deps import CurrentPrincipal, SessionDep, SettingsDep, current_principal
from api.responses import CONFLICT, V1_ERRORS
from shared import jobs, search_report
from shared.queue import enqueue_stage
from shared.schemas import JobCreate, JobPublic
from shared.schemas.searches import KFoldPublic, SearchPublic

router = APIRouter(prefix="/jobs", tags=["searches"], dependencies=[Depends(current_principal)], responses=V1_ERRORS)

JobId = Annotated[str, Path(description="Job id (32 hex digits).", max_length=64)]
StageIndex = Annotated[
    int | None, Query(ge=0, le=31, description="The stage's index; default the job's first stage of that kind.")
]


@router.get("/{job_id}/search", response_model=SearchPublic)
def get_search(
    job_id: JobId, session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal, stage: StageIndex = None
) -> SearchPublic:
    """A search stage's trials (number, state, value, parameters, job, epochs, where it was pruned), the best trial
    and each parameter's importance (fANOVA over the completed trials), read from the study while it runs."""
    job = jobs.get_job(session, job_id, principal)
    chosen = search_report.fanout_stage(job, "search", stage)
    return SearchPublic.model_validate(search_report.search_view(session, settings, job, chosen))


@router.post("/{job_id}/search/best", status_code=status.HTTP_201_CREATED, response_model=JobPublic,
             responses=CONFLICT)
def submit_best_trial(
    job_id: JobId, session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal, stage: StageIndex = None
) -> JobPublic:
    """Submit the best trial so far as a new job: its train stage (the trial's values) and evaluate stage, on the
    same dataset and model. 409 while no trial has completed."""
    job = jobs.get_job(session, job_id, principal)
    chosen = search_report.fanout_stage(job, "search", stage)
    body = search_report.best_trial_job_spec(session, settings, job, chosen)
    created, _ = jobs.create_job(session, settings, JobCreate.model_validate(body), principal)
    first = next(s for s in created.stages if s.state == "queued")
    with contextlib.suppress(Exception):  # stored as queued; the workers' reaper sends it once the broker is back
        enqueue_stage(first.id)
    return jobs.job_public(created)


@router.get("/{job_id}/kfold", response_model=KFoldPublic)
def get_kfold(job_id: JobId, session: SessionDep, principal: CurrentPrincipal, stage: StageIndex = None) -> KFoldPublic:
    """A k-fold stage's folds (job, state, overall metrics) and, once every fold ended, the mean, standard
    deviation, min and max of each metric overall and per class."""
    job = jobs.get_job(session, job_id, principal)
    chosen = search_report.fanout_stage(job, "kfold", stage)
    return KFoldPublic.model_validate(search_report.kfold_view(session, job, chosen))
