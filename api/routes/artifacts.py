from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import FileResponse

from api.deps import CurrentPrincipal, SessionDep, SettingsDep, current_principal
from api.responses import V1_ERRORS, ErrorResponse
from shared import jobs
from shared.errors import NotFound, RangeNotSatisfiable
from shared.schemas import ArtifactPublic, ArtifactsPublic
from shared.storage import job_dir_rel, list_files, safe_resolve
from shared.urls import job_url

router = APIRouter(
    prefix="/jobs/{job_id}", tags=["artifacts"], dependencies=[Depends(current_principal)], responses=V1_ERRORS
)
JobId = Annotated[str, Path(max_length=64)]
RangeHeader = Annotated[
    str | None,
    Header(alias="Range", max_length=200, description="Byte ranges, e.g. 'bytes=0-1023' (answered with 206)."),
]


@router.get("/artifacts", response_model=ArtifactsPublic)
def list_artifacts(
    job_id: JobId, session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal
) -> ArtifactsPublic:
    """Every file the job's stages wrote, with sizes."""
    job = jobs.get_job(session, job_id, principal)
    files = list_files(settings.artifacts_root, job_dir_rel(job.id))
    items = [ArtifactPublic(path=f.path, size=f.size, url=job_url(job.id, "artifacts", f.path)) for f in files]
    return ArtifactsPublic(job_id=job.id, items=items, total_size=sum(f.size for f in files))


BINARY = "application/octet-stream"
MEDIA_TYPES = {
    ".json": "application/json",
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".log": "text/plain",
    ".yaml": "application/yaml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".onnx": BINARY,
    ".pt": BINARY,
}
DOWNLOAD_RESPONSES = {
    200: {
        "description": "The file; ``Accept-Ranges: bytes``.",
        "headers": {"Accept-Ranges": {"schema": {"type": "string"}, "description": "bytes"}},
        "content": {BINARY: {"schema": {"type": "string", "format": "binary"}}},
    },
    206: {
        "description": "The requested byte range (``Range: bytes=a-b``), with ``Content-Range``.",
        "headers": {"Content-Range": {"schema": {"type": "string"}, "description": "bytes a-b/size"}},
        "content": {BINARY: {"schema": {"type": "string", "format": "binary"}}},
    },
    416: {"model": ErrorResponse, "description": "The requested range is outside the file (``Content-Range: bytes */size``)."},
}


def check_range(header: str | None, size: int) -> None:
    """Starlette answers an unsatisfiable Range in plain text; refuse it here in the error envelope instead
    (a satisfiable one is served by ``FileResponse`` from the request itself)."""
    if not header:
        return
    unit, _, ranges = header.partition("=")
    if unit.strip().lower() != "bytes" or not ranges.strip():
        raise RangeNotSatisfiable(f"Range {header!r} is not a bytes range", size)
    for part in ranges.split(","):
        start, _, end = part.strip().partition("-")
        try:
            first = int(start) if start else max(size - int(end), 0)
            last = int(end) if end and start else size - 1
        except ValueError:
            raise RangeNotSatisfiable(f"Range {header!r} is malformed", size) from None
        if first >= size or first > last:
            raise RangeNotSatisfiable(f"Range {header!r} is outside the file's {size} bytes", size)


def media_type(path: str) -> str:
    """Our own table, not the host's /etc/mime.types (which calls .pt a SNES page table)."""
    return MEDIA_TYPES.get(FilePath(path).suffix.lower(), BINARY)


@router.get(
    "/artifacts/{path:path}", response_class=FileResponse, responses=DOWNLOAD_RESPONSES, operation_id="download_artifact"
)
@router.head(
    "/artifacts/{path:path}", response_class=FileResponse, responses=DOWNLOAD_RESPONSES, operation_id="head_artifact"
)
def download_artifact(
    job_id: JobId,
    path: str,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    byte_range: RangeHeader = None,
) -> FileResponse:
    """One artifact, streamed; HTTP Range requests are honoured. Paths cannot leave the job's folder."""
    job = jobs.get_job(session, job_id, principal)
    job_root = settings.artifacts_root / job_dir_rel(job.id)
    if not job_root.is_dir():
        raise NotFound(f"job {job.id} has no artifacts yet", field="path")
    target = safe_resolve(job_root, path, what="path")
    if not target.is_file():
        raise NotFound(f"artifact {path!r} is not a file", field="path")
    check_range(byte_range, target.stat().st_size)
    return FileResponse(target, filename=target.name, media_type=media_type(target.name))


@router.get("/weights", response_class=FileResponse, responses=DOWNLOAD_RESPONSES, operation_id="download_weights")
@router.head("/weights", response_class=FileResponse, responses=DOWNLOAD_RESPONSES, operation_id="head_weights")
def download_weights(
    job_id: JobId,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    byte_range: RangeHeader = None,
) -> FileResponse:
    """The job's final best weights (best.pt of its latest train stage)."""
    job = jobs.get_job(session, job_id, principal)
    if not job.best_weights:
        raise NotFound(f"job {job.id} has no weights yet (state {job.state})", field="job_id")
    target = safe_resolve(settings.artifacts_root, job.best_weights, what="weights")
    check_range(byte_range, target.stat().st_size)
    return FileResponse(target, filename="best.pt", media_type="application/octet-stream")
