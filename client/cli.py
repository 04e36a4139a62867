"""The ``stagerun`` command. Server commands start processes (the API, a Celery worker, a one-shot
pipeline), so this module never imports the worker; client commands talk to the API over HTTP."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from client.api_client import (
    ApiError,
    cancel,
    compare,
    delete,
    download,
    fetch_dataset,
    fetch_job,
    fetch_kfold,
    fetch_search,
    list_datasets,
    list_jobs,
    logs,
    register_dataset,
    rerun,
    resume,
    submit,
    submit_best_trial,
)
from client.local_commands import (
    cmd_dataset_check,
    cmd_token_create,
    cmd_token_list,
    cmd_token_local,
    cmd_token_revoke,
    ensure_local_token,
    print_local_token,
)
from client.pipeline_file import load_pipeline_file, read_pipeline_file
from client.progress import follow, localization_table, per_class_table, starvation_table
from client.stack import Stack, api_command, python_module, worker_command
from shared.compare import compare_table
from shared.errors import InvalidSpec
from shared.settings import get_settings

DEMO_DATASET = "demo"


# ----------------------------------------------------------------------------------------------- server side


def cmd_db_upgrade(_args) -> int:
    from shared import migrate

    migrate.upgrade()
    print(f"database at head: {get_settings().database_url.split('@')[-1]}")
    return 0


def cmd_api(args) -> int:
    settings = get_settings()
    if settings.is_embedded:
        print_local_token(*ensure_local_token())
    command = api_command(args.host or settings.api_host, args.port or settings.api_port, settings.api_shutdown_grace_s)
    os.execv(sys.executable, command)
    return 0


def cmd_worker(args) -> int:
    settings = get_settings()
    os.execv(sys.executable, worker_command(args.concurrency, args.queue or settings.queue))
    return 0


def cmd_run(args) -> int:
    load_pipeline_file(Path(args.file))  # a user's mistake is one line here, before a process is started
    os.execv(sys.executable, python_module("client.oneshot", args.file))
    return 0


def cmd_up(_args) -> int:
    settings = get_settings()
    settings.ensure_dirs()
    stack = Stack()
    stack.start()
    print_local_token(stack.token, stack.token_created)
    print(f"stagerun up: API {settings.api_url} (docs {settings.api_url}/docs), one worker on queue {settings.queue}")
    print(f"database {settings.database_url}\nbroker   {settings.broker_url}\nhome     {settings.home}")
    previous = {sig: signal.signal(sig, _stop_on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(0.5)
    except (KeyboardInterrupt, _StopRequested):
        pass
    finally:
        stack.stop()  # SIGTERM to the API and the worker, then wait for them: no orphan keeps the port
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


class _StopRequested(Exception):
    pass


def _stop_on_signal(signum: int, _frame) -> None:
    """SIGTERM (docker, systemd, kill) and SIGHUP (a closed terminal) stop ``stagerun up`` as Ctrl-C does."""
    raise _StopRequested(signal.Signals(signum).name)


# ----------------------------------------------------------------------------------------------- client side


def cmd_submit(args) -> int:
    spec = read_pipeline_file(Path(args.file))  # the API validates the rest and names every problem
    job = submit(spec, args.idempotency_key)
    print(job["id"])
    if args.watch:
        return _watch(job["id"])
    return 0


def failure_cause(error: str) -> str:
    """The line of a stage's error text that says why: the exception and its message come first (what follows
    is the exception's own detail or the tail of the stage's log)."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    return lines[0] if lines else "(no error text)"


def _print_job(job: dict) -> None:
    print(f"job {job['id']} ({job['name']}): {job['state']} - {job['progress']}")
    for stage in job["stages"]:
        line = f"  {stage['index'] + 1:02d} {stage['type']:<9} {stage['state']:<10}"
        if stage.get("epochs"):
            line += f" epoch {stage['epoch']}/{stage['epochs']}"
        if stage.get("duration_s") is not None:
            line += f"  {stage['duration_s']:.1f}s"
        if stage.get("error"):
            line += f"\n     error: {failure_cause(stage['error'])}"
        print(line)
        recipe = (stage.get("info") or {}).get("automatic_recipe")
        if recipe and recipe.get("choices"):
            print("     automatic recipe (name an option to override it, auto_recipe: false to turn it off):")
            for choice in recipe["choices"]:
                print(f"       {choice['option']} = {json.dumps(choice['value'])}: {choice['reason']}")
        localization = (stage.get("results") or {}).get("localization")
        if localization:
            print(f"     localization on {stage['results'].get('split', '?')} (conf {localization['conf']}):")
            print("\n".join("     " + row for row in localization_table(localization).splitlines()))
        starvation = (stage.get("info") or {}).get("starvation")
        if starvation:
            print("     boxes without a learning signal (starvation report):")
            print("\n".join("     " + row for row in starvation_table(starvation).splitlines()))
    if job.get("error"):
        print(f"  error: {job['error'].strip().splitlines()[0]}")


def cmd_status(args) -> int:
    job = fetch_job(args.job_id)
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        _print_job(job)
    return 0


WATCH_EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 3, "gated": 4}
EXIT_CODES_HELP = """exit codes of watch, submit --watch, resume --watch and rerun --watch (how the job ended):
  0  succeeded
  1  failed (any command also exits 1 on an error from the API, or when no API answers)
  2  (any command) a usage error or an invalid pipeline
  3  cancelled
  4  gated: a stage's gate failed, the stages after it were skipped
status only shows a job and exits 0 whatever its state."""


def _watch(job_id: str) -> int:
    """Follow the job until it ends; its end as an exit code (``WATCH_EXIT_CODES``)."""
    job = follow(lambda: fetch_job(job_id), interval_s=1.0)
    _print_job(job)
    return WATCH_EXIT_CODES.get(job["state"], 1)


def cmd_watch(args) -> int:
    return _watch(args.job_id)


def cmd_jobs(args) -> int:
    page = list_jobs(args.state, args.tag, args.name, args.owner, args.limit, parent=args.parent,
                     top_level=args.top_level)
    rows = [
        (job["id"], _shorten(job["name"], 40), job["state"], job["progress"] or "", _when(job["created_at"]))
        for job in page["items"]
    ]
    print(_table(("id", "name", "state", "progress", "created"), rows))
    if page["count"] > len(rows):
        print(f"({len(rows)} of {page['count']} jobs; --limit to see more)")
    return 0


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _when(moment: str | None) -> str:
    """An API timestamp (ISO 8601, UTC) as ``YYYY-MM-DD HH:MM:SS``."""
    return (moment or "").replace("T", " ")[:19]


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


def _dataset_line(dataset: dict) -> str:
    state = "valid" if dataset["valid"] else f"INVALID ({dataset['error_count']} errors)"
    images = ", ".join(f"{split} {count}" for split, count in dataset["images"].items())
    return f"{dataset['reference']} ({dataset['name']}): {state}, {dataset['warning_count']} warnings; images {images}"


def cmd_dataset_register(args) -> int:
    dataset, created = register_dataset(args.source, args.name)
    print(("registered " if created else "already registered, validated again: ") + _dataset_line(dataset))
    if not dataset["valid"]:
        for finding in (dataset.get("validation") or {}).get("errors", [])[:20]:
            where = finding.get("file", "") + (f":{finding['line']}" if finding.get("line") else "")
            print(f"  {where}: {finding.get('message')}")
        return 1
    return 0


def cmd_dataset_list(args) -> int:
    page = list_datasets(args.limit)
    rows = [
        (d["reference"], _shorten(d["name"], 30), "yes" if d["valid"] else "no", str(d["error_count"]),
         str(d["warning_count"]), " ".join(f"{k}:{v}" for k, v in d["images"].items()), _when(d["created_at"]))
        for d in page["items"]
    ]
    print(_table(("reference", "name", "valid", "errors", "warnings", "images", "registered"), rows))
    if page["count"] > len(rows):
        print(f"({len(rows)} of {page['count']} datasets; --limit to see more)")
    return 0


def cmd_dataset_show(args) -> int:
    dataset = fetch_dataset(args.dataset_id.removeprefix("dataset:"))
    print(json.dumps(dataset, indent=2) if args.json else _dataset_line(dataset))
    return 0


def _value(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def cmd_search(args) -> int:
    if args.submit_best:
        job = submit_best_trial(args.job_id, args.stage)
        print(f"job {job['id']} submitted: the best trial's train and evaluate stages ({job['progress']})")
        return 0
    view = fetch_search(args.job_id, args.stage)
    if args.json:
        print(json.dumps(view, indent=2))
        return 0
    objective = view["objective"]
    target = objective["metric"] + (f" of {objective['class']}" if objective.get("class") else "")
    print(f"search (stage {view['stage_index']}), {view['state']}: {len(view['trials'])}/{view['trials_planned']} "
          f"trials, {view['parallel']} at a time, maximizing {target} on {objective['split']}")
    names = sorted({name for trial in view["trials"] for name in trial["params"]})
    rows = [
        (str(t["number"]), t["state"], _value(t["value"]), *(_value(t["params"].get(n)) for n in names),
         _value(t["epochs"]), t["job_id"] or "-")
        for t in view["trials"]
    ]
    if rows:
        print(_table(("trial", "state", "value", *names, "epochs", "job"), rows))
    best = view["best"]
    if best is not None:
        params = ", ".join(f"{k}={_value(v)}" for k, v in best["params"].items())
        print(f"best: trial {best['number']}, {target} {best['value']:.4f} ({params}); job {best['job_id']}")
    if view["importance"]:
        print("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in view["importance"].items()))
    return 0


def cmd_kfold(args) -> int:
    view = fetch_kfold(args.job_id, args.stage)
    if args.json:
        print(json.dumps(view, indent=2))
        return 0
    print(f"k-fold (stage {view['stage_index']}), {view['state']}: {len(view['folds'])}/{view['k']} folds")
    rows = [(str(f["fold"]), f["state"], _value((f["overall"] or {}).get("mAP50")),
             _value((f["overall"] or {}).get("mAP50-95")), f["job_id"]) for f in view["folds"]]
    if rows:
        print(_table(("fold", "state", "mAP50", "mAP50-95", "job"), rows))
    summary = view["summary"]
    if summary:
        def spread(cell: dict | None) -> str:
            return "-" if cell is None else f"{cell['mean']:.3f} ± {cell['std']:.3f}"

        table = [("all", *(spread(summary["overall"][m]) for m in ("mAP50", "mAP50-95", "precision", "recall")))]
        table += [(row["name"], *(spread(row[m]) for m in ("mAP50", "mAP50-95", "precision", "recall")))
                  for row in summary["per_class"]]
        print(_table(("class", "mAP50", "mAP50-95", "precision", "recall"), table))
    return 0


def cmd_cancel(args) -> int:
    job = cancel(args.job_id)
    if job["state"] == "cancelled":
        print(f"job {job['id']} cancelled")
    else:
        print(f"job {job['id']}: cancel requested; its running stage stops within one epoch ({job['progress']})")
    return 0


def cmd_delete(args) -> int:
    delete(args.job_id, args.keep_artifacts)
    print(f"job {args.job_id} deleted" + (" (its artifacts are kept)" if args.keep_artifacts else ""))
    return 0


def cmd_logs(args) -> int:
    try:
        for text in logs(args.job_id, args.stage, args.tail, args.follow):
            sys.stdout.write(text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # stagerun logs ID | head: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the flush at exit does not fail again
    return 0


def cmd_resume(args) -> int:
    job = resume(args.job_id)
    print(f"job {job['id']} resumed: {job['progress']}")
    if args.watch:
        return _watch(job["id"])
    return 0


def cmd_rerun(args) -> int:
    body: dict = {}
    if args.overrides:
        try:
            body["overrides"] = json.loads(args.overrides)
        except json.JSONDecodeError as exc:
            print(f"error: --overrides is not JSON: {exc}", file=sys.stderr)
            return 2
    if args.name:
        body["name"] = args.name
    job = rerun(args.job_id, args.from_stage, body)
    reused = sum(1 for stage in job["stages"] if (stage.get("info") or {}).get("reused_from"))
    print(f"{job['id']}: re-run of {args.job_id}, {reused} stage(s) reused, {job['progress']}")
    if args.watch:
        return _watch(job["id"])
    return 0


def cmd_preset_list(_args) -> int:
    from shared.presets import load_preset, preset_names

    for name in preset_names():
        preset = load_preset(name)
        stages = " -> ".join(s.get("name") or s["type"] for s in preset["stages"])
        print(f"{name:<22} {stages}\n{'':<22} {preset.get('description', '')}")
    return 0


def cmd_preset_show(args) -> int:
    from shared.presets import PresetError, preset_text

    try:
        text = preset_text(args.name)
    except PresetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text if "dataset:" in text else text + "# name your dataset to submit it:\n# dataset: my-dataset\n")
    return 0


def cmd_download(args) -> int:
    default = Path(args.artifact).name if args.artifact else f"{args.job_id}-best.pt"
    path = download(args.job_id, Path(args.output or default), args.artifact)
    print(f"{path} ({path.stat().st_size} bytes)")
    return 0


def cmd_compare(args) -> int:
    report = compare(args.a, args.b)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(compare_table(report))
    return 0


# ----------------------------------------------------------------------------------------------- demo


def demo_pipeline(epochs: int = 3, imgsz: int = 128) -> dict:
    return {
        "name": "demo",
        "tags": ["demo"],
        "dataset": DEMO_DATASET,
        "model": "yolov8n.yaml",
        "stages": [
            {"type": "train", "epochs": epochs, "imgsz": imgsz, "batch": 8, "seed": 0, "workers": 0},
            {"type": "evaluate", "split": "val", "imgsz": imgsz, "batch": 8},
        ],
    }


def cmd_synth(args) -> int:
    from client.synthetic import make_dataset

    path = make_dataset(
        Path(args.folder), train=args.train, val=args.val, test=args.test, size=args.size, seed=args.seed
    )
    print(path)
    return 0


def cmd_demo(args) -> int:
    """Start the embedded stack, make a dataset, submit train+evaluate, follow it, fetch best.pt."""
    from client.synthetic import make_dataset

    settings = get_settings()
    settings.ensure_dirs()
    dataset = settings.datasets_root / DEMO_DATASET
    if not (dataset / "data.yaml").exists():
        make_dataset(dataset, train=16, val=8, size=128, seed=0)
        print(f"synthetic dataset: {dataset}")
    stack = Stack(log_dir=settings.home / "logs")
    stack.start()
    print_local_token(stack.token, stack.token_created)
    try:
        stack.wait_ready()
        print(f"API {settings.api_url} and one worker are up (logs in {settings.home / 'logs'})")
        job = submit(demo_pipeline(epochs=args.epochs))
        print(f"submitted job {job['id']}: train ({args.epochs} epochs) then evaluate")
        final = follow(lambda: fetch_job(job["id"]), interval_s=1.0)
        _print_job(final)
        if final["state"] != "succeeded":
            return 1
        weights = download(job["id"], Path(args.output or settings.home / "demo" / "best.pt"))
        print(f"\nbest.pt downloaded to {weights.resolve()} ({weights.stat().st_size} bytes)")
        evaluate = final["stages"][-1]
        print(f"\nper-class metrics on '{evaluate['results']['split']}':")
        print(per_class_table(evaluate["results"]["metrics"]))
        return 0
    finally:
        stack.stop()


# ----------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stagerun",
        description="Staged object-detector training as a service.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    exit_codes = {"epilog": EXIT_CODES_HELP, "formatter_class": argparse.RawDescriptionHelpFormatter}

    sub.add_parser("up", help="start the API and one worker (embedded default: SQLite, no servers)").set_defaults(
        func=cmd_up
    )
    api = sub.add_parser("api", help="start the API server")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.set_defaults(func=cmd_api)
    worker = sub.add_parser("worker", help="start a Celery worker (one per GPU)")
    worker.add_argument("--concurrency", type=int, default=1)
    worker.add_argument("--queue")
    worker.set_defaults(func=cmd_worker)
    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply Alembic migrations up to head").set_defaults(func=cmd_db_upgrade)
    token = sub.add_parser("token", help="API tokens (run where the database is reachable)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token and print it (once)")
    create.add_argument("--name", required=True)
    create.add_argument("--owner", help="whose jobs and datasets it sees (default: the name)")
    create.add_argument("--admin", action="store_true", help="sees and controls every owner's jobs")
    create.set_defaults(func=cmd_token_create)
    token_sub.add_parser("list", help="list tokens (never their text)").set_defaults(func=cmd_token_list)
    revoke = token_sub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id", type=int)
    revoke.set_defaults(func=cmd_token_revoke)
    token_sub.add_parser("local", help="print this home's local admin token, creating it if needed").set_defaults(
        func=cmd_token_local
    )
    dataset = sub.add_parser("dataset", help="datasets")
    dataset_sub = dataset.add_subparsers(dest="dataset_command", required=True)
    check = dataset_sub.add_parser("check", help="validate and profile a dataset folder here (no API)")
    check.add_argument("folder")
    check.add_argument("--imgsz", type=int, default=640, help="training size to judge thin classes at")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=cmd_dataset_check)
    register = dataset_sub.add_parser(
        "register", help="register a folder under the API's datasets root, or upload a .zip; exit 1 if invalid"
    )
    register.add_argument("source", help="folder relative to the datasets root, or a local .zip file")
    register.add_argument("--name")
    register.set_defaults(func=cmd_dataset_register)
    listing = dataset_sub.add_parser("list", help="registered datasets, newest first")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=cmd_dataset_list)
    show = dataset_sub.add_parser("show", help="one registered dataset (its validation and profile with --json)")
    show.add_argument("dataset_id", help="<id> or dataset:<id>")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_dataset_show)
    run = sub.add_parser("run", help="run a pipeline file here, without the API")
    run.add_argument("file")
    run.set_defaults(func=cmd_run)
    submit_parser = sub.add_parser("submit", help="submit a pipeline file to the API", **exit_codes)
    submit_parser.add_argument("file")
    submit_parser.add_argument("--idempotency-key")
    submit_parser.add_argument("--watch", action="store_true", help="follow the job until it ends")
    submit_parser.set_defaults(func=cmd_submit)
    status = sub.add_parser("status", help="show a job")
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    watch = sub.add_parser("watch", help="progress bar until the job ends; exit code: how it ended", **exit_codes)
    watch.add_argument("job_id")
    watch.set_defaults(func=cmd_watch)
    jobs_parser = sub.add_parser("jobs", help="list jobs, newest first")
    jobs_parser.add_argument("--state", choices=("queued", "running", "succeeded", "failed", "cancelled", "gated"))
    jobs_parser.add_argument("--tag", action="append", help="only jobs with this tag (repeat: with all of them)")
    jobs_parser.add_argument("--name", help="only jobs whose name holds this (any case)")
    jobs_parser.add_argument("--owner", help="only this owner's jobs (an admin token sees every owner's)")
    jobs_parser.add_argument("--limit", type=int, default=50, help="at most this many (1..200, default 50)")
    jobs_parser.add_argument("--parent", help="only the child jobs (search trials, k-fold folds) of this job")
    jobs_parser.add_argument("--top-level", action="store_true", help="only jobs that are no other job's child")
    jobs_parser.set_defaults(func=cmd_jobs)
    search_parser = sub.add_parser("search", help="a search stage's trials, best trial and parameter importances")
    search_parser.add_argument("job_id")
    search_parser.add_argument("--stage", type=int, help="the search stage's index (default: the job's first)")
    search_parser.add_argument("--submit-best", action="store_true", help="submit the best trial as a new job")
    search_parser.add_argument("--json", action="store_true")
    search_parser.set_defaults(func=cmd_search)
    kfold_parser = sub.add_parser("kfold", help="a k-fold stage's folds and each class's mean and spread")
    kfold_parser.add_argument("job_id")
    kfold_parser.add_argument("--stage", type=int, help="the k-fold stage's index (default: the job's first)")
    kfold_parser.add_argument("--json", action="store_true")
    kfold_parser.set_defaults(func=cmd_kfold)
    logs_parser = sub.add_parser("logs", help="what a job's stages printed (ANSI codes and bar redraws removed)")
    logs_parser.add_argument("job_id")
    logs_parser.add_argument("--stage", type=int, help="one stage's log (from 0); default: every stage's")
    logs_parser.add_argument("--tail", type=int, help="only the last N lines (of each stage)")
    logs_parser.add_argument("-f", "--follow", action="store_true", help="print lines as they come until the job ends")
    logs_parser.set_defaults(func=cmd_logs)
    cancel_parser = sub.add_parser("cancel", help="stop a queued or running job (a running stage within one epoch)")
    cancel_parser.add_argument("job_id")
    cancel_parser.set_defaults(func=cmd_cancel)
    delete_parser = sub.add_parser("delete", help="forget a finished job and delete its artifacts")
    delete_parser.add_argument("job_id")
    delete_parser.add_argument("--keep-artifacts", action="store_true", help="leave its folder on the volume")
    delete_parser.set_defaults(func=cmd_delete)
    resume_parser = sub.add_parser(
        "resume", help="run a failed or cancelled job again from where it stopped", **exit_codes
    )
    resume_parser.add_argument("job_id")
    resume_parser.add_argument("--watch", action="store_true", help="follow the job until it ends")
    resume_parser.set_defaults(func=cmd_resume)
    rerun_parser = sub.add_parser(
        "rerun", help="a new job from a job's pipeline, reusing its stages before --from-stage", **exit_codes
    )
    rerun_parser.add_argument("job_id")
    rerun_parser.add_argument("--from-stage", type=int, required=True, help="first stage to run again (from 0)")
    rerun_parser.add_argument("--overrides", help='changes to the stages that run, as JSON: {"epochs": 5, "stages": {...}}')
    rerun_parser.add_argument("--name")
    rerun_parser.add_argument("--watch", action="store_true", help="follow the new job until it ends")
    rerun_parser.set_defaults(func=cmd_rerun)
    preset = sub.add_parser("preset", help="the pipelines shipped with stagerun")
    preset_sub = preset.add_subparsers(dest="preset_command", required=True)
    preset_sub.add_parser("list", help="every preset and what it does").set_defaults(func=cmd_preset_list)
    preset_show = preset_sub.add_parser("show", help="print a preset's file (stagerun preset show hem > my.yaml)")
    preset_show.add_argument("name")
    preset_show.set_defaults(func=cmd_preset_show)
    dl = sub.add_parser("download", help="download a job's best weights (or one artifact)")
    dl.add_argument("job_id")
    dl.add_argument("-o", "--output")
    dl.add_argument("--artifact", help="artifact path, e.g. 01-train/results.csv")
    dl.set_defaults(func=cmd_download)
    compare_parser = sub.add_parser(
        "compare", help="per-class comparison of two evaluations (job or job:stage), biggest mAP50 change first"
    )
    compare_parser.add_argument("a", help="job id (its last succeeded evaluate stage) or job:stage")
    compare_parser.add_argument("b", help="the same, compared with a: changes are b - a")
    compare_parser.add_argument("--json", action="store_true", help="print the API's response as it is")
    compare_parser.set_defaults(func=cmd_compare)
    synth = sub.add_parser("synth", help="write a small synthetic detection dataset")
    synth.add_argument("folder")
    synth.add_argument("--train", type=int, default=16)
    synth.add_argument("--val", type=int, default=8)
    synth.add_argument("--test", type=int, default=0)
    synth.add_argument("--size", type=int, default=128)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=cmd_synth)
    demo = sub.add_parser("demo", help="embedded end-to-end demo: train + evaluate on synthetic data")
    demo.add_argument("--epochs", type=int, default=3)
    demo.add_argument("-o", "--output")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InvalidSpec as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except httpx.ConnectError:
        print(f"error: no stagerun API at {get_settings().api_url} (start it with 'stagerun up')", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
