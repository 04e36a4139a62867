"""What the dashboard shows of a job, as plain data for the templates: pure functions of the job document
(``JobPublic`` as JSON) and the files in its artifact folder. Nothing here renders HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared.urls import job_url

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "gated"})
RESUMABLE = frozenset({"failed", "cancelled"})
# the plots Ultralytics' validator writes into a stage folder, in the order the page shows them
PLOTS = (
    ("confusion_matrix_normalized.png", "Confusion matrix (normalized)"),
    ("BoxPR_curve.png", "Precision-recall curve"),
    ("BoxF1_curve.png", "F1-confidence curve"),
)
DOWNLOADS = ("weights/best.pt", "weights/last.pt", "metrics.json", "stats.json", "detailed.json", "export_check.json")


@dataclass
class Image:
    url: str
    caption: str


@dataclass
class StageView:
    index: int
    type: str
    name: str | None
    state: str
    epoch: int
    epochs: int | None
    percent: int
    duration_s: float | None
    error: str | None
    split: str | None = None
    metrics: dict | None = None
    localization: dict | None = None
    error_breakdown: dict | None = None
    mining: dict | None = None
    tta: dict | None = None
    search: dict | None = None
    kfold: dict | None = None
    automatic_recipe: list[dict] = field(default_factory=list)
    plots: list[Image] = field(default_factory=list)
    downloads: list[Image] = field(default_factory=list)


def artifact_url(job_id: str, stored: str) -> str:
    """The download URL of a path the stage stored relative to the artifacts root (``jobs/<id>/...``)."""
    prefix = f"jobs/{job_id}/"
    relative = stored[len(prefix) :] if stored.startswith(prefix) else stored
    return job_url(job_id, "artifacts", relative)


def stage_percent(stage: dict) -> int:
    if stage["state"] == "succeeded":
        return 100
    if stage.get("epochs"):
        return max(0, min(100, round(100 * (stage.get("epoch") or 0) / stage["epochs"])))
    return 0


def job_percent(job: dict) -> int:
    """The share of the pipeline done: each stage counts the same, a running one by its epochs."""
    stages = job["stages"]
    return round(sum(stage_percent(stage) for stage in stages) / len(stages)) if stages else 0


def _mining(job_id: str, results: dict) -> dict | None:
    if "hard_images" not in results:
        return None
    previews = [
        {
            "rank": item["rank"],
            "image": item["image"],
            "difficulty": item["difficulty"],
            "kinds": item.get("kinds") or {},
            "url": artifact_url(job_id, item["preview"]) if item.get("preview") else None,
        }
        for item in (results.get("top") or [])[:12]
    ]
    kinds = {kind: count for kind, count in (results.get("kinds") or {}).items() if kind != "matched"}
    return {
        "images": results.get("images"),
        "hard_images": results.get("hard_images"),
        "kinds": kinds,
        "dataset": results.get("dataset") or {},
        "previews": previews,
    }


def _search(results: dict) -> dict | None:
    """A finished search stage's trials, best first, with the parameters as columns."""
    trials = results.get("trials")
    if not trials:
        return None
    names = sorted({name for trial in trials for name in trial["params"]})
    ordered = sorted(trials, key=lambda t: (t["value"] is None, -(t["value"] or 0.0), t["number"]))
    return {"trials": ordered, "params": names, "best": results.get("best"), "objective": results.get("objective"),
            "importance": results.get("importance")}


def _kfold(results: dict) -> dict | None:
    summary = results.get("summary")
    if not summary:
        return None
    return {"folds": results.get("folds") or [], "summary": summary}


def stage_view(job_id: str, stage: dict, artifacts_root: Path) -> StageView:
    results = stage.get("results") or {}
    info = stage.get("info") or {}
    folder = artifacts_root / stage["dir"]
    relative = Path(stage["dir"]).relative_to(f"jobs/{job_id}") if stage["dir"].startswith("jobs/") else None
    plots, downloads = [], []
    if relative is not None and folder.is_dir():
        plots = [
            Image(job_url(job_id, "artifacts", f"{relative}/{name}"), caption)
            for name, caption in PLOTS
            if (folder / name).is_file()
        ]
        names = [*DOWNLOADS, *sorted(p.name for p in folder.glob("*.onnx"))]
        downloads = [
            Image(job_url(job_id, "artifacts", f"{relative}/{name}"), name) for name in names if (folder / name).is_file()
        ]
    return StageView(
        index=stage["index"],
        type=stage["type"],
        name=stage.get("name"),
        state=stage["state"],
        epoch=stage.get("epoch") or 0,
        epochs=stage.get("epochs"),
        percent=stage_percent(stage),
        duration_s=stage.get("duration_s"),
        error=stage.get("error"),
        split=results.get("split"),
        metrics=results.get("metrics"),
        localization=results.get("localization"),
        error_breakdown=(results.get("error_breakdown") or {}).get("overall"),
        mining=_mining(job_id, results),
        tta=results.get("tta"),
        search=_search(results) if stage["type"] == "search" else None,
        kfold=_kfold(results) if stage["type"] == "kfold" else None,
        automatic_recipe=(info.get("automatic_recipe") or {}).get("choices") or [],
        plots=plots,
        downloads=downloads,
    )


def job_view(job: dict, artifacts_root: Path) -> dict:
    return {
        "job": job,
        "terminal": job["state"] in TERMINAL,
        "can_cancel": job["state"] not in TERMINAL and not job.get("cancel_requested"),
        "can_resume": job["state"] in RESUMABLE,
        "stages": [stage_view(job["id"], stage, artifacts_root) for stage in job["stages"]],
        "has_curves": any(stage.get("epochs") for stage in job["stages"]),
    }

