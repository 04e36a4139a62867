"""``stagerun run FILE``: run one pipeline here, without the API or a broker, through the same stage
code a worker runs. The job is recorded in the database like any other."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from pydantic import ValidationError

from client.pipeline_file import load_pipeline_file
from client.progress import follow, per_class_table
from shared import jobs, migrate
from shared.auth import LOCAL_ADMIN
from shared.db import session_scope
from shared.errors import StagerunError
from shared.settings import get_settings
from worker.pipeline import run_job_locally


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: stagerun run PIPELINE.yaml", file=sys.stderr)
        return 2
    settings = get_settings()
    settings.ensure_dirs()
    migrate.upgrade()
    try:
        spec = load_pipeline_file(Path(args[0]))
        with session_scope() as session:
            job, _ = jobs.create_job(session, settings, spec, LOCAL_ADMIN)
            job_id = job.id
    except StagerunError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except (ValidationError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"job {job_id}: running {len(spec.stages)} stage(s); logs under {settings.artifacts_root / 'jobs' / job_id}")

    def snapshot() -> dict:
        with session_scope() as session:
            return jobs.job_public(jobs.get_job(session, job_id, LOCAL_ADMIN)).model_dump(mode="json")

    runner = threading.Thread(target=run_job_locally, args=(job_id,), daemon=True)
    runner.start()
    final = follow(snapshot, interval_s=1.0)
    runner.join()
    final = snapshot()
    return report(final, settings.artifacts_root)


def report(job: dict, artifacts_root: Path) -> int:
    print(f"job {job['id']} {job['state']}" + (f": {job['error']}" if job.get("error") else ""))
    if job.get("best_weights"):
        print(f"best weights: {artifacts_root / job['best_weights']}")
    metrics = next(
        (s["results"]["metrics"] for s in reversed(job["stages"]) if (s.get("results") or {}).get("metrics")), None
    )
    if metrics:
        print(per_class_table(metrics))
    return 0 if job["state"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
