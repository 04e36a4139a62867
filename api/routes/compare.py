"""Two evaluations per class: precision, recall, mAP50, mAP50-95 and error counts, with the change b - a."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator

from api.deps import CurrentPrincipal, SessionDep, SettingsDep, current_principal
from api.responses import CONFLICT, V1_ERRORS
from shared import compare, jobs
from shared.errors import NotFound
from shared.schemas.compare import ComparePublic

router = APIRouter(
    prefix="/compare", tags=["compare"], dependencies=[Depends(current_principal)], responses=V1_ERRORS
)


def _checked(reference: str) -> str:
    compare.parse_reference(reference)  # a ValueError naming the form: the 422 says it
    return reference


def _reference(description: str):
    query = Query(max_length=69, description=description, json_schema_extra={"pattern": compare.REFERENCE})
    return Annotated[str, query, AfterValidator(_checked)]


_FORM = "'<job id>' (its last succeeded evaluate stage) or '<job id>:<stage index>' (that evaluate stage)."
ReferenceA = _reference(f"The first evaluation: {_FORM}")
ReferenceB = _reference(f"The second evaluation, compared with the first (deltas are b - a): {_FORM}")


@router.get("", response_model=ComparePublic, responses=CONFLICT)
def compare_evaluations(
    a: ReferenceA, b: ReferenceB, session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal
) -> ComparePublic:
    """Per-class comparison of two evaluate stages on the same dataset and split, the biggest mAP50 change first."""
    evaluations = []
    for field, reference in (("a", a), ("b", b)):
        job_id, index = compare.parse_reference(reference)
        try:
            job = jobs.get_job(session, job_id, principal)
        except NotFound as exc:
            raise NotFound(exc.message, field=field) from None
        evaluations.append(compare.evaluation_of(job, index, settings.artifacts_root, field))
    return compare.compare(*evaluations)
