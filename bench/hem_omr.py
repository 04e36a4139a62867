"""A preset (default ``hem``) run as a stagerun job on ../shared/omr-bench, measured exactly like
bench/train_quality_omr.py's runs (same validation pass on val and test, same JSON), so its report merges them.

The job runs through ``stagerun run`` (the embedded path: the same stage code a worker runs) in a home of its
own under --work, on a copy of omr-bench in that home's datasets root (Ultralytics writes label caches beside
the labels, and the team folder stays untouched). The issue's protocol: 20 train epochs in total across stages.

    python bench/hem_omr.py --work /work/runs/omr --label hem --epochs 20
    python bench/hem_omr.py --work /work/runs/omr --label hem_r05 --overrides '{"stages": {"mine": {"replay": 0.5}}}'
    python bench/train_quality_omr.py --work /work/runs/omr --report     # every run in the folder, one table
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
    args = parser.parse_args()
    args.work = args.work.resolve()
    home = args.work / f"home-{args.label}"
    datasets = home / "datasets"
    if not (datasets / "omr-bench").exists():
        shutil.copytree(Path(os.environ.get("OMR_BENCH", OMR_BENCH)), datasets / "omr-bench")
    body = pipeline(args)
    pipeline_file = args.work / f"{args.label}.pipeline.yaml"
    pipeline_file.write_text(yaml.safe_dump(body, sort_keys=False))
    env = {**os.environ, "STAGERUN_HOME": str(home), "STAGERUN_DATASETS_ROOT": str(datasets), "YOLO_OFFLINE": "1",
           "STAGERUN_DEVICE": args.device}
    stagerun = Path(sys.executable).with_name("stagerun")
    started = time.perf_counter()
    subprocess.run([str(stagerun), "run", str(pipeline_file)], env=env, check=False)
    seconds = time.perf_counter() - started
    summary_file = max((home / "artifacts" / "jobs").glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    job = json.loads(summary_file.read_text())["job"]
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
        "options": {"preset": args.preset, "overrides": body["overrides"]},
        "model": job["model"],
        "epochs": sum(s["epochs"] for s in train_stages),
        "imgsz": args.imgsz,
        "batch": args.batch,
        "fraction": 1.0,
        "seed": args.seed,
        "device": args.device if args.device != "cpu" else f"cpu ({os.cpu_count()} cores, torch {torch.__version__})",
        "weights": str(home / "artifacts" / job["best_weights"]),
        "train_seconds": round(sum(s["duration_s"] for s in train_stages), 1),
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
