"""Timestamps as the API shows them: always in UTC with their zone (SQLite hands them back without one)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_utc)]
