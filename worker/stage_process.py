"""``python -m worker.stage_process STAGE_ID``: runs one stage in a process of its own.

Celery's prefork children are daemonic and may not start children, so a DataLoader with workers
inside a task would die; a plain subprocess may. It also gives a clean GPU after every stage, cancel
by signal as a last resort, and a crash that kills one stage rather than the worker.
Exit status: 0 succeeded, 3 cancelled, 4 waiting for its child jobs, anything else failed (the error text is on the stage)."""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from shared import log_format
from shared.auth import SYSTEM
from shared.db import session_scope
from shared.errors import InvalidSpec, StagerunError
from shared.models import Stage
from shared.plain_text import strip_ansi
from shared.references import resolve_dataset, resolve_model
from shared.schemas import StageSpec
from shared.settings import Settings, get_settings
from shared.stage_kinds import Product, kind
from shared.stage_kinds.chaining import input_producers
from shared.states import StageState
from shared.storage import safe_resolve
from worker.reporting import StageReporter
from worker.stages import runner_for
from worker.stages.base import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_SUCCEEDED,
    EXIT_WAITING,
    StageCancelled,
    StageContext,
    StageWaiting,
)
from worker.ultralytics_ext.offline import prepare_offline

log = logging.getLogger("stagerun.stage")


def pick_device(settings: Settings) -> str:
    if settings.device:
        return settings.device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def _produced(settings: Settings, source: Stage, product: Product, field: str) -> Path:
    """The file an earlier stage produced for ``product`` (stored in its results under the product's key)."""
    produced = (source.results or {}).get(product.results_key)
    if source.state != StageState.SUCCEEDED.value or not produced:
        raise InvalidSpec(f"stage {source.index} ({source.type}) did not produce {product}", field=field)
    if product is Product.DATASET and not source.results.get("dataset", {}).get("total", 1):
        raise InvalidSpec(
            f"stage {source.index} ({source.type}) found no hard examples, so there is nothing to train on",
            field=field,
        )
    return safe_resolve(settings.artifacts_root, produced, what=product.results_key)


def _check_mined_dataset(settings: Settings, mined: Path, dataset) -> None:
    """A mine stage's hard-example dataset passes the same validator as every dataset a job names, before the
    stage trains on it: its files in the mine stage's folder, its val split the job's own."""
    from shared.datasets.validate import validate_dataset

    report = validate_dataset(
        mined, (mined.parent, settings.datasets_root), settings.dataset_max_images, file_roots=(dataset.root,)
    )
    errors = [issue.to_dict() for issue in report.issues if issue.severity == "error"]
    if errors:
        first = errors[0]
        where = f"{first['file']}:{first['line']}" if first["line"] else first["file"] or "data.yaml"
        raise InvalidSpec(
            f"the hard-example dataset did not pass validation ({len(errors)} error(s)): {where}: {first['message']}",
            field="data",
        )


def build_context(session: Session, settings: Settings, stage: Stage, reporter: StageReporter) -> StageContext:
    """Everything a runner works with; its inputs found by the same chaining rule the submit check used."""
    import yaml

    job = stage.job
    spec = TypeAdapter(StageSpec).validate_python(stage.spec)
    dataset = resolve_dataset(settings, job.dataset, session=session, principal=SYSTEM)
    model = resolve_model(settings, session, job.model)
    stage_dir = settings.artifacts_root / stage.dir
    stage_dir.mkdir(parents=True, exist_ok=True)
    data_yaml = stage_dir / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(dataset.ultralytics_yaml(), sort_keys=False))
    weights: str | None = None
    declared = kind(stage.type)
    specs = [TypeAdapter(StageSpec).validate_python(s.spec) for s in job.stages]
    for name, source in input_producers(specs, stage.index).items():
        product = declared.inputs[name]
        if product is Product.WEIGHTS:
            weights = model.source if source is None else str(_produced(settings, job.stages[source], product, name))
        elif product is Product.DATASET and source is not None:
            produced = _produced(settings, job.stages[source], product, name)
            _check_mined_dataset(settings, produced, dataset)
            data_yaml.write_text(produced.read_text())
    if weights == model.source and not model.is_weights and not declared.accepts_model_config:
        raise InvalidSpec(f"{stage.type} has no weights: no earlier train stage and the job's model is a yaml",
                          field="weights")
    return StageContext(
        settings=settings,
        job_id=job.id,
        stage_id=stage.id,
        index=stage.index,
        spec=spec,
        stage_dir=stage_dir,
        dataset=dataset,
        data_yaml=data_yaml,
        model=model,
        weights=weights,
        device=pick_device(settings) if declared.computes else "none",
        reporter=reporter,
    )


STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR}


def describe_failure(exc: Exception, stage_dir: Path) -> str:
    """The error text stored on a failed stage; a full disk or an unwritable folder is named as such."""
    text = strip_ansi(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        return f"cannot write artifacts in {exc.filename or stage_dir}: disk full or folder not writable - {text}"
    return text


def die_with_parent() -> None:
    """Ask Linux to kill this process when the worker that started it dies, so a killed worker leaves no
    orphan training on; the reaper then hands the stage to a live worker, which resumes it."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the request took effect
        sys.exit(EXIT_FAILED)


def run(stage_id: int) -> int:
    settings = get_settings()
    prepare_offline(settings.yolo_config_dir)
    with session_scope() as session:
        stage = session.get(Stage, stage_id)
        if stage is None:
            log.error("no stage %s", stage_id)
            return EXIT_FAILED
        reporter = StageReporter(stage.id, stage.job_id)
        log_format.bind(job_id=stage.job_id, stage_id=stage.id, stage_index=stage.index)
        try:
            context = build_context(session, settings, stage, reporter)
        except StagerunError as exc:
            reporter.error(f"{exc.field or 'input'}: {exc.message}")
            return EXIT_FAILED
        except OSError as exc:
            reporter.error(f"artifact folder {settings.artifacts_root / stage.dir} is not writable: {exc}")
            return EXIT_FAILED
        stage_type = stage.type
    log.info("stage %s (%s) of job %s starting on %s", stage_id, stage_type, context.job_id, context.device)
    try:
        results = runner_for(stage_type)(context).run()  # worker/stages/<kind>.py
    except StageCancelled as exc:
        log.info("stage %s cancelled: %s", stage_id, exc)
        return EXIT_CANCELLED
    except StageWaiting as exc:
        log.info("stage %s: %s", stage_id, exc)
        reporter.record("waiting_on", exc.waiting_on)
        return EXIT_WAITING
    except Exception as exc:  # a failed stage records its error and fails the job; the worker lives on
        traceback.print_exc()
        reporter.error(describe_failure(exc, context.stage_dir))
        return EXIT_FAILED
    reporter.results(results)
    return EXIT_SUCCEEDED


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log_format.configure(get_settings().log_format)
    die_with_parent()
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m worker.stage_process STAGE_ID", file=sys.stderr)
        return 2
    return run(int(args[0]))


if __name__ == "__main__":
    sys.exit(main())
