"""A preset (default ``hem``) run as a stagerun job on ../shared/omr-bench, measured exactly like
bench/train_quality_omr.py's runs (same validation pass on val and test, same JSON), so its report merges them.

The job runs through ``stagerun run`` (the embedded path: the same stage code a worker runs) in a home of its
own under --work, on a copy of omr-bench in that home's datasets root (Ultralytics writes label caches beside
the labels, and the team folder stays untouched). The issue's protocol: 20 train epochs in total across stages.

    python bench/hem_omr.py --work /work/runs/omr --label hem --epochs 20
    python bench/hem_omr.py --work /work/runs/omr --label hem_r05 --overrides '{"stages": {"mine": {"replay": 0.5}}}'
    python bench/train_quality_omr.py --work /work/runs/omr --report     # every run in the folder, one table
    # re-run an earlier run's job from a stage (its stages before it reused, nothing trained twice)
    python bench/hem_omr.py --work /work/runs/omr --label hem_d8 --rerun-of hem --from-stage 1 \
        --overrides '{"stages": {"mine": {"min_difficulty": 8}}}'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omr import OMR_BENCH, omr_data_yaml  # noqa: E402
from train_quality_omr import SPLITS, evaluate  # noqa: E402


def pipeline(args: argparse.Namespace) -> dict:
    """The job body: the preset, the protocol's size and seed, and the train stages' bench settings."""
    from shared.presets import load_preset

    bench_settings = {"val": False, "plots": False, "workers": args.workers, "deterministic": True}
    trains = [s.get("name") or str(i) for i, s in enumerate(load_preset(args.preset)["stages"]) if s["type"] == "train"]
    overrides = {"epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch, "seed": args.seed,
                 "stages": {name: dict(bench_settings) for name in trains}}
    for key, fields in args.overrides.get("stages", {}).items():
        overrides["stages"].setdefault(key, {}).update(fields)
    overrides.update({k: v for k, v in args.overrides.items() if k != "stages"})
    return {"name": f"bench-{args.label}", "preset": args.preset, "dataset": "omr-bench", "overrides": overrides}


def rerun(env: dict, args: argparse.Namespace) -> str:
    """Re-run the latest job in the earlier run's home from ``--from-stage`` (shared.jobs.rerun_job: the stages
    before it reused, their files read in place), here, through the same stage code; returns the new job's id."""
    os.environ.update(env)
    from shared import jobs
    from shared.auth import LOCAL_ADMIN
    from shared.db import session_scope
    from shared.models import Job
    from shared.settings import get_settings
    from worker.pipeline import run_job_locally

    settings = get_settings()
    with session_scope() as session:
        source = session.query(Job).filter(Job.name == f"bench-{args.rerun_of}").order_by(Job.created_at.desc()).first()
        job = jobs.rerun_job(session, settings, source, args.from_stage, LOCAL_ADMIN, args.overrides,
                             f"bench-{args.label}")
        job_id = job.id
    print(f"re-run {job_id} of {source.id} from stage {args.from_stage}", flush=True)
    run_job_locally(job_id)
    return job_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="hem")
    parser.add_argument("--label", default="hem")
    parser.add_argument("--epochs", type=int, default=20, help="train epochs in total across the preset's stages")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overrides", type=json.loads, default={}, help="more preset overrides (JSON)")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--rerun-of", metavar="LABEL", help="re-run the job of that earlier run (in its home)")
    parser.add_argument("--from-stage", type=int, default=1)
    args = parser.parse_args()
    args.work = args.work.resolve()
    home = args.work / f"home-{args.rerun_of or args.label}"
    datasets = home / "datasets"
    if not (datasets / "omr-bench").exists():
        shutil.copytree(Path(os.environ.get("OMR_BENCH", OMR_BENCH)), datasets / "omr-bench")
    env = {"STAGERUN_HOME": str(home), "STAGERUN_DATASETS_ROOT": str(datasets), "YOLO_OFFLINE": "1",
           "STAGERUN_DEVICE": args.device}
    started = time.perf_counter()
    if args.rerun_of:
        job_id = rerun(env, args)
        body = {"rerun_of": args.rerun_of, "from_stage": args.from_stage, "overrides": args.overrides}
    else:
        body = pipeline(args)
        pipeline_file = args.work / f"{args.label}.pipeline.yaml"
        pipeline_file.write_text(yaml.safe_dump(body, sort_keys=False))
        stagerun = Path(sys.executable).with_name("stagerun")
        subprocess.run([str(stagerun), "run", str(pipeline_file)], env={**os.environ, **env}, check=False)
        job_id = None
    seconds = time.perf_counter() - started
    summaries = (home / "artifacts" / "jobs").glob(f"{job_id or '*'}/summary.json")
    job = json.loads(max(summaries, key=lambda p: p.stat().st_mtime).read_text())["job"]
    if job["state"] != "succeeded":
        raise SystemExit(f"job {job['id']} {job['state']}: {job.get('error')}")
    import torch

    stages = [
        {"name": s["name"], "type": s["type"], "seconds": s["duration_s"], "epochs": s.get("epochs"),
         "results": {k: v for k, v in (s["results"] or {}).items() if k in ("dataset", "hard_images", "kinds")},
         "automatic_recipe": (s.get("info") or {}).get("automatic_recipe")}
        for s in job["stages"]
    ]
    train_stages = [s for s in job["stages"] if s["type"] == "train"]
    result = {
        "label": args.label,
        "options": {"preset": args.preset, **{k: v for k, v in body.items() if k in ("overrides", "rerun_of",
                                                                                       "from_stage")}},
        "model": job["model"],
        "epochs": sum(s["epochs"] for s in train_stages),
        "imgsz": args.imgsz,
        "batch": args.batch,
        "fraction": 1.0,
        "seed": args.seed,
        "device": args.device if args.device != "cpu" else f"cpu ({os.cpu_count()} cores, torch {torch.__version__})",
        "weights": str(home / "artifacts" / job["best_weights"]),
        "train_seconds": round(sum(s["duration_s"] for s in train_stages if not (s.get("info") or {}).get(
            "reused_from")), 1),
        "job_seconds": round(seconds, 1),
        "stages": stages,
    }
    os.environ["OMR_BENCH"] = str(datasets / "omr-bench")  # measure on the copy: its label caches stay there
    data = omr_data_yaml()
    result["splits"] = {split: evaluate(result["weights"], data, split, args) for split in SPLITS}
    (args.work / f"{args.label}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({split: result["splits"][split]["classes"]["all"] for split in SPLITS}, indent=2))


if __name__ == "__main__":
    main()
