from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api.deps import CurrentPrincipal, SessionDep, SettingsDep, current_principal
from api.responses import CONFLICT, UNSUPPORTED_MEDIA_TYPE, V1_ERRORS
from shared.datasets import registry
from shared.errors import InvalidSpec, StagerunError
from shared.schemas.datasets import DatasetPublic, DatasetRegister, DatasetsPublic
from shared.urls import dataset_url

router = APIRouter(
    prefix="/datasets", tags=["datasets"], dependencies=[Depends(current_principal)], responses=V1_ERRORS
)
DatasetId = Annotated[str, Path(description="Dataset id (32 hex digits).", max_length=64)]

REGISTER_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": DatasetRegister.model_json_schema()},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "A zip in Ultralytics layout."},
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                },
            }
        },
    },
}


class UnsupportedMediaType(StagerunError):
    status_code = 415
    code = "unsupported_media_type"


async def _json_body(request: Request) -> DatasetRegister:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidSpec("body is not valid JSON", field="body") from None
    try:
        return DatasetRegister.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetPublic,
    openapi_extra={"requestBody": REGISTER_BODY},
    responses={**UNSUPPORTED_MEDIA_TYPE, 200: {"model": DatasetPublic, "description": "The folder was registered before."}},
)
async def register_dataset(
    request: Request, session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal, response: Response
) -> DatasetPublic:
    """Register a folder under the datasets root (JSON ``{"path": ...}``) or upload a zip (multipart
    ``file``). It is validated and profiled now. A folder with problems is stored with them (``valid``
    false, each with file and line), and a job naming it as ``dataset:<id>`` is refused until fixed;
    registering the same folder again validates it again and answers 200 with the same dataset. A zip
    with any error is refused (422, every finding in ``details``) and nothing of it is kept."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=4) as form:
            upload, name = form.get("file"), form.get("name") or "upload"
            if not isinstance(upload, UploadFile):
                raise InvalidSpec("multipart body needs a 'file' part holding a zip", field="file")
            if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
                raise InvalidSpec("name must be 1-200 characters", field="name")
            record = await run_in_threadpool(
                registry.register_upload, session, settings, principal, upload.file, name.strip()
            )
    elif content_type in ("application/json", ""):
        spec = await _json_body(request)
        record, created = await run_in_threadpool(
            registry.register_folder, session, settings, principal, spec.path, spec.name
        )
        if not created:
            response.status_code = status.HTTP_200_OK
    else:
        raise UnsupportedMediaType(
            f"send application/json (a folder) or multipart/form-data (a zip), not {content_type!r}",
            field="Content-Type",
        )
    response.headers["Location"] = dataset_url(record.id)
    return registry.dataset_public(record)


@router.get("", response_model=DatasetsPublic)
def list_datasets(
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> DatasetsPublic:
    items, count = registry.list_datasets(session, principal, limit, offset)
    return DatasetsPublic(items=[registry.dataset_summary(d) for d in items], count=count, limit=limit, offset=offset)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: DatasetId, session: SessionDep, principal: CurrentPrincipal) -> DatasetPublic:
    """The validation report (errors and warnings with file and line) and the profile."""
    return registry.dataset_public(registry.get_dataset(session, dataset_id, principal))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=CONFLICT)
def delete_dataset(
    dataset_id: DatasetId, session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal
) -> Response:
    """Forget a dataset (refused while an unfinished job uses it). An uploaded dataset's files are
    deleted; a folder registered in place stays on the volume."""
    registry.delete_dataset(session, settings, dataset_id, principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
