"""Registered datasets: validated and profiled once, stored with their report, seen by their owner.

Registration refuses (4xx, nothing stored) a request that cannot name a dataset: a path outside the
datasets root, a file instead of a folder, an unsafe or oversized zip. **An upload** whose content has
any error is refused too (422 with every finding; its files are removed): nothing invalid is ever copied
in. **A folder registered in place** whose content has problems is stored with ``valid = false`` and its
report, so its owner can read what to fix; registering the same folder again validates it again and
returns the same dataset. A job naming an invalid dataset, or one whose folder has changed into an
invalid one, is refused (shared/datasets/check.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.auth import Principal
from shared.datasets.data_yaml import REGISTERED_PREFIX, UPLOADS_DIR, DatasetRef, find_data_yaml, load_data_yaml
from shared.datasets.profile import build_profile
from shared.datasets.upload import ZipLimits, dataset_folder, extract_zip
from shared.datasets.validate import ValidationReport, validate_dataset
from shared.errors import Conflict, InvalidSpec, NotFound, PathOutsideRoot
from shared.models import Dataset, Job, new_job_id, utcnow
from shared.schemas.datasets import DatasetPublic, DatasetSummary
from shared.settings import Settings
from shared.states import TERMINAL_JOB_STATES
from shared.storage import safe_resolve


def _validate(settings: Settings, folder: Path) -> ValidationReport:
    return validate_dataset(folder, folder, settings.dataset_max_images)


def _check_and_store(
    session: Session,
    settings: Settings,
    principal: Principal,
    dataset_id: str,
    name: str,
    folder: Path,
    source: str,
    report: ValidationReport | None = None,
) -> Dataset:
    report = report or _validate(settings, folder)
    profile = build_profile(report.names, report.images) if report.valid else None
    record = Dataset(
        id=dataset_id,
        owner=principal.owner,
        name=name,
        path=folder.resolve().relative_to(settings.datasets_root.resolve()).as_posix(),
        source=source,
        valid=report.valid,
        validation=report.to_dict(),
        profile=profile,
        created_at=utcnow(),
    )
    session.add(record)
    session.commit()
    return record


def _refresh(session: Session, settings: Settings, record: Dataset, folder: Path, name: str | None) -> Dataset:
    """The folder was registered before: validate it again (it may have been fixed or broken since)."""
    report = _validate(settings, folder)
    record.valid = report.valid
    record.validation = report.to_dict()
    record.profile = build_profile(report.names, report.images) if report.valid else None
    if name:
        record.name = name
    session.commit()
    return record


def register_folder(
    session: Session, settings: Settings, principal: Principal, path: str, name: str | None = None
) -> tuple[Dataset, bool]:
    """The dataset of the folder at ``path`` and whether it is new: a folder this owner registered before is
    validated again and its record returned."""
    try:
        folder = safe_resolve(settings.datasets_root, path, what="path")
    except NotFound as exc:
        raise InvalidSpec(exc.message, field="path") from None
    relative = folder.relative_to(settings.datasets_root.resolve()).parts
    if not relative:
        raise InvalidSpec("path must name a folder inside the datasets root, not the root itself", field="path")
    if relative[0] == UPLOADS_DIR:
        raise InvalidSpec("uploaded datasets are registered already; name them as dataset:<id>", field="path")
    if not folder.is_dir():
        raise InvalidSpec(f"path {path!r} is not a folder", field="path")
    relative_path = folder.relative_to(settings.datasets_root.resolve()).as_posix()
    existing = session.scalar(
        select(Dataset).where(Dataset.owner == principal.owner, Dataset.path == relative_path, Dataset.source == "folder")
    )
    if existing is not None:
        return _refresh(session, settings, existing, folder, name), False
    return _check_and_store(session, settings, principal, new_job_id(), name or folder.name, folder, "folder"), True


def register_upload(session: Session, settings: Settings, principal: Principal, upload: BinaryIO, name: str) -> Dataset:
    dataset_id = new_job_id()
    uploads = settings.datasets_root / UPLOADS_DIR
    uploads.mkdir(parents=True, exist_ok=True)
    limits = ZipLimits(
        settings.dataset_unzipped_max_bytes, settings.dataset_zip_max_ratio, settings.dataset_zip_max_files
    )
    extracted = extract_zip(upload, uploads / dataset_id, limits)
    try:
        folder = dataset_folder(extracted)
        report = _validate(settings, folder)
        if not report.valid:
            errors = [i.to_dict() | {"field": "file"} for i in report.issues if i.severity == "error"]
            first = errors[0]
            where = f"{first['file']}:{first['line']}" if first["line"] else first["file"] or "the zip"
            raise InvalidSpec(
                f"the uploaded dataset did not pass validation ({len(errors)} error(s)); nothing was kept: "
                f"{where}: {first['message']}",
                field="file",
                details=errors[:50],
            )
        return _check_and_store(session, settings, principal, dataset_id, name, folder, "upload", report)
    except BaseException:
        session.rollback()
        shutil.rmtree(extracted, ignore_errors=True)
        raise


def get_dataset(session: Session, dataset_id: str, principal: Principal) -> Dataset:
    """The dataset if ``principal`` may see it; another owner's is 'not found', like a missing one."""
    record = session.get(Dataset, dataset_id) if len(dataset_id) <= 64 else None
    if record is None or not principal.can_see(record.owner):
        raise NotFound(f"dataset {dataset_id} not found", field="dataset_id")
    return record


def list_datasets(session: Session, principal: Principal, limit: int, offset: int) -> tuple[list[Dataset], int]:
    query = principal.scope(select(Dataset), Dataset.owner)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by(Dataset.created_at.desc(), Dataset.id).limit(limit).offset(offset)
    return list(session.scalars(page)), count


def delete_dataset(session: Session, settings: Settings, dataset_id: str, principal: Principal) -> None:
    """Forget a dataset; an uploaded one's files go too. A folder registered in place is left on disk."""
    record = get_dataset(session, dataset_id, principal)
    reference = REGISTERED_PREFIX + record.id
    active = session.scalar(
        select(func.count()).where(Job.dataset == reference, Job.state.not_in([s.value for s in TERMINAL_JOB_STATES]))
    )
    if active:
        raise Conflict(f"dataset {record.id} is used by {active} unfinished job(s)", field="dataset_id")
    folder = None
    if record.source == "upload":
        try:
            folder = safe_resolve(settings.datasets_root / UPLOADS_DIR, record.id, what="path")
        except (NotFound, PathOutsideRoot):
            folder = None
    session.delete(record)
    session.commit()
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _summary_fields(record: Dataset) -> dict:
    validation = record.validation or {}
    return {
        "id": record.id,
        "name": record.name,
        "owner": record.owner,
        "path": record.path,
        "source": record.source,
        "valid": record.valid,
        "error_count": validation.get("error_count", 0),
        "warning_count": validation.get("warning_count", 0),
        "images": validation.get("images", {}),
        "reference": REGISTERED_PREFIX + record.id,
        "created_at": record.created_at,
    }


def dataset_summary(record: Dataset) -> DatasetSummary:
    return DatasetSummary(**_summary_fields(record))


def dataset_public(record: Dataset) -> DatasetPublic:
    return DatasetPublic(**_summary_fields(record), validation=record.validation or {}, profile=record.profile)


def registered_dataset_ref(
    settings: Settings, dataset_id: str, session: Session | None, principal: Principal | None
) -> DatasetRef:
    """The data.yaml of registered dataset ``dataset_id``, if ``principal`` may see it and it passed validation."""
    if session is None or principal is None:
        raise InvalidSpec("registered datasets can only be named where a database session is open", field="dataset")
    try:
        record = get_dataset(session, dataset_id, principal)
    except NotFound as exc:
        raise InvalidSpec(exc.message, field="dataset") from None
    if not record.valid:
        first = next(iter((record.validation or {}).get("errors") or []), {})
        reason = f": {first.get('file')}:{first.get('line') or ''} {first.get('message')}" if first else ""
        raise InvalidSpec(f"dataset:{dataset_id} did not pass validation{reason}", field="dataset")
    folder = safe_resolve(settings.datasets_root, record.path, what="dataset")
    yaml_path = find_data_yaml(folder)
    if yaml_path is None:
        raise InvalidSpec(f"dataset:{dataset_id} has no data.yaml any more", field="dataset")
    return load_data_yaml(yaml_path, settings.datasets_root, f"dataset:{dataset_id}")
