"""``summary.json``: the whole job in one file in its artifact folder, written when the job ends."""

from __future__ import annotations

import json
import logging

from shared.jobs import summary
from shared.models import Job
from shared.settings import Settings
from shared.storage import job_dir_rel

log = logging.getLogger(__name__)


def write_summary(settings: Settings, job: Job) -> None:
    """Best effort: an unwritable artifact folder must not keep the job's end from being recorded."""
    job_dir = settings.artifacts_root / job_dir_rel(job.id)
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "summary.json").write_text(json.dumps(summary(job), indent=2, default=str))
    except OSError as exc:
        log.warning("job %s: could not write summary.json: %s", job.id, exc)
