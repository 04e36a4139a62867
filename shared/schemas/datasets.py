"""Request and response schemas for datasets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.moments import UtcDateTime


class DatasetRegister(BaseModel):
    """Register a folder that is already on the datasets volume."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        min_length=1, max_length=1024, description="Folder holding data.yaml, relative to the datasets root."
    )
    name: str | None = Field(None, min_length=1, max_length=200, description="Default: the folder's name.")


class DatasetSummary(BaseModel):
    id: str
    name: str
    owner: str | None
    path: str = Field(description="Folder relative to the datasets root.")
    source: str = Field(description="'folder' (registered in place) or 'upload' (unpacked from a zip).")
    valid: bool
    error_count: int
    warning_count: int
    images: dict[str, int] = Field(description="Images per split.")
    reference: str = Field(description="How a job names it: dataset:<id>.")
    created_at: UtcDateTime


class DatasetPublic(DatasetSummary):
    validation: dict = Field(description="Errors and warnings (file, line, message), counts per kind.")
    profile: dict | None = Field(
        description="Instances and images per class and split, box-size histogram, thin and oversized "
        "box shares, and the classes at risk of getting no learning signal (at_risk)."
    )


class DatasetsPublic(BaseModel):
    items: list[DatasetSummary]
    count: int
    limit: int
    offset: int
