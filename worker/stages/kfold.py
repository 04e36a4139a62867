"""The k-fold stage: k child jobs (train on k-1 folds, evaluate on the held-out one), ``parallel`` at a time, then
the mean and standard deviation of every metric, overall and per class.

Like the search stage it takes one step per run and waits for its children without holding a worker
(worker/stages/search.py). A fold's dataset is ``fold:<job>/<stage>/<fold>`` (shared/references.py), written once
by worker/folds.py."""

from __future__ import annotations

import statistics
from pathlib import Path

from shared import fanout
from shared.db import session_scope
from shared.models import Job
from shared.schemas import JobCreate
from shared.stage_kinds.kfold import KIND as KFOLD
from shared.stage_kinds.kfold import KFoldStage
from worker.folds import write_folds
from worker.stages.base import StageRunner, StageWaiting

METRICS = ("mAP50", "mAP50-95", "precision", "recall")


def fold_dataset_ref(job_id: str, stage_index: int, fold: int) -> str:
    return f"fold:{job_id}/{stage_index}/{fold}"


def _spread(values: list[float]) -> dict:
    return {
        "mean": round(statistics.fmean(values), 6),
        "std": round(statistics.stdev(values), 6) if len(values) > 1 else 0.0,
        "min": round(min(values), 6),
        "max": round(max(values), 6),
        "folds": len(values),
    }


def aggregate(fold_metrics: list[dict], names: list[str]) -> dict:
    """Mean and standard deviation (sample, n-1) over the folds of each metric, overall and per class; a class
    absent from a fold's held-out images has no figure there and is averaged over the folds that hold it."""
    overall = {m: _spread([f["overall"][m] for f in fold_metrics]) for m in METRICS}
    per_class = []
    for class_id, name in enumerate(names):
        row: dict = {"class_id": class_id, "name": name}
        for metric in METRICS:
            values = [f["per_class"][class_id][metric] for f in fold_metrics
                      if f["per_class"][class_id].get(metric) is not None]
            row[metric] = _spread(values) if values else None
        per_class.append(row)
    return {"overall": overall, "per_class": per_class}


class KFoldRunner(StageRunner):
    kind = KFOLD

    def run(self) -> dict:
        context, spec = self.context, self.context.spec
        folds = write_folds(context.dataset, context.stage_dir / "folds", spec.folds, spec.seed)
        parallel = spec.parallel or spec.folds
        with session_scope() as session:
            parent = session.get(Job, context.job_id)
            kids = {kid.child_index: kid for kid in fanout.children(session, parent.id, context.index)}
            running, failed = [], []
            for fold, kid in kids.items():
                result = fanout.outcome(kid)
                if result.status == "stopped":
                    fanout.resume_child(session, kid)
                    running.append(kid.id)
                elif result.status == "running":
                    running.append(kid.id)
                elif result.status != "succeeded":
                    failed.append((fold, result.error))
            for fold in range(spec.folds):
                if fold not in kids and len(running) < parallel:
                    kid = self._create_fold(session, parent, fold, spec)
                    kids[fold] = kid
                    running.append(kid.id)
            session.commit()
            done = sum(1 for kid in kids.values() if fanout.outcome(kid).status != "running")
            context.reporter.progress(done, spec.folds)
            if failed:
                fanout.cancel_children(session, parent)
                session.commit()
                fold, error = failed[0]
                raise RuntimeError(f"fold {fold} did not succeed: {error}")
            if running or len(kids) < spec.folds:
                raise StageWaiting(running)
            return self._results(kids, folds, context.dataset.names)

    def _create_fold(self, session, parent: Job, fold: int, spec: KFoldStage) -> Job:
        train = {**spec.train, "type": "train"}
        evaluate = {"type": "evaluate", "split": "val", "imgsz": spec.imgsz or train.get("imgsz", 640), "plots": False}
        job_spec = JobCreate(
            name=f"{parent.name} fold {fold}",
            tags=[*parent.tags[:30], f"kfold:{parent.id}"],
            dataset=fold_dataset_ref(parent.id, self.context.index, fold),
            model=self._fold_model(parent),
            stages=[train, evaluate],
        )
        return fanout.create_child(session, self.context.settings, parent, self.context.index, fold, job_spec)

    def _fold_model(self, parent: Job) -> str:
        weights = self.context.weights
        if weights is None or weights == self.context.model.source:
            return parent.model
        return self.context.relative(Path(weights))

    def _results(self, kids: dict[int, Job], folds: list[dict], names: list[str]) -> dict:
        rows, fold_metrics = [], []
        for fold in sorted(kids):
            kid = kids[fold]
            metrics = (kid.stages[-1].results or {}).get("metrics")
            fold_metrics.append(metrics)
            rows.append({**folds[fold], "job_id": kid.id, "overall": metrics["overall"],
                         "weights": (kid.stages[0].results or {}).get("weights")})
        summary = aggregate(fold_metrics, names)
        means = {
            "overall": {m: summary["overall"][m]["mean"] for m in METRICS},
            "per_class": [
                {"class_id": row["class_id"], "name": row["name"],
                 **{m: None if row[m] is None else row[m]["mean"] for m in METRICS}}
                for row in summary["per_class"]
            ],
        }
        return {"metrics": means, "folds": rows, "summary": summary, "k": len(kids)}
