"""What a mine stage found: per-class counts and the hardest images with links to their previews."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from api.deps import CurrentPrincipal, SessionDep, current_principal
from api.responses import CONFLICT, V1_ERRORS
from shared import jobs
from shared.errors import Conflict, NotFound
from shared.schemas.hard_examples import HardExamplesPublic, HardImagePublic
from shared.stage_kinds import KINDS, Product, produces
from shared.states import StageState
from shared.storage import job_dir_rel
from shared.urls import job_url

router = APIRouter(
    prefix="/jobs/{job_id}/stages",
    tags=["hard-examples"],
    dependencies=[Depends(current_principal)],
    responses=V1_ERRORS,
)
JobId = Annotated[str, Path(max_length=64)]
StageIndex = Annotated[int, Path(ge=0, le=1000, description="The stage's index in the pipeline (from 0).")]


@router.get("/{index}/hard-examples", response_model=HardExamplesPublic, responses=CONFLICT)
def hard_examples(
    job_id: JobId,
    index: StageIndex,
    session: SessionDep,
    principal: CurrentPrincipal,
    top: Annotated[int, Query(ge=0, le=200, description="How many of the hardest images to list.")] = 20,
) -> HardExamplesPublic:
    """Summary of a finished mine stage: counts per kind and class, and the top hardest images."""
    job = jobs.get_job(session, job_id, principal)
    stage = next((s for s in job.stages if s.index == index), None)
    if stage is None:
        raise NotFound(f"job {job.id} has no stage {index} (it has {len(job.stages)})", field="index")
    if not produces(stage.type, Product.HARD_EXAMPLES):
        makers = " or ".join(t for t, k in KINDS.items() if Product.HARD_EXAMPLES in k.produces)
        raise Conflict(f"stage {index} is a {stage.type} stage, not a {makers} stage", field="index")
    if stage.state != StageState.SUCCEEDED.value or not stage.results:
        raise Conflict(f"mine stage {index} has not finished (state {stage.state})", field="index")
    results = stage.results
    prefix = job_dir_rel(job.id) + "/"

    def url(relative: str) -> str:
        return job_url(job.id, "artifacts", relative.removeprefix(prefix))

    return HardExamplesPublic(
        job_id=job.id,
        stage_index=index,
        split=results["split"],
        images=results["images"],
        hard_images=results["hard_images"],
        kinds=results["kinds"],
        per_class=results["per_class"],
        error_breakdown=results.get("error_breakdown"),
        dataset=results["dataset"],
        top=[
            HardImagePublic(
                rank=item["rank"],
                image=item["image"],
                difficulty=item["difficulty"],
                kinds=item["kinds"],
                preview_url=url(item["preview"]),
            )
            for item in results["top"][:top]
        ],
        stats_url=url(results["stats"]),
        detailed_url=url(results["detailed"]),
        hard_example_lists={name: url(path) for name, path in results["hard_example_lists"].items()},
        dataset_yaml_url=url(results["dataset_yaml"]),
    )
