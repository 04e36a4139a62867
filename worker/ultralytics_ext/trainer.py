"""Our DetectionTrainer subclass. With no stagerun options it trains exactly as Ultralytics does;
it only hands each results.csv row to callbacks as the epoch ends."""

from __future__ import annotations

import os
import shutil
import time

from ultralytics.models.yolo.detect import DetectionTrainer

from shared.schemas.training import TrainingOptions
from worker.reporting import StageReporter


def _plain(value: object) -> float | int | str:
    if hasattr(value, "item"):
        value = value.item()
    return value if isinstance(value, int | str) else float(value)


class StagerunTrainer(DetectionTrainer):
    """``results_row`` holds the newest results.csv row (the same columns and values Ultralytics writes),
    so an ``on_fit_epoch_end`` callback can store it the moment the epoch ends.

    ``options`` (stagerun's own training options, a ``TrainingOptions``) and ``reporter`` (where to record
    what was used) are bound per stage by ``for_stage``, because Ultralytics builds the trainer itself from
    a class and its own arguments."""

    results_row: dict | None = None
    options: TrainingOptions | None = None
    reporter: StageReporter | None = None
    keep_resumable: bool = False  # set by a stage that stops early (cancel): last.pt must stay resumable

    @classmethod
    def for_stage(cls, options: TrainingOptions | None, reporter: StageReporter | None) -> type[StagerunTrainer]:
        return type(cls.__name__, (cls,), {"options": options, "reporter": reporter})

    def record(self, topic: str, value: object) -> None:
        """Store a fact about this run on the stage (``stage.info[topic]``), when running as a stage."""
        if self.reporter is not None:
            self.reporter.record(topic, value)

    def save_model(self):
        """Ultralytics writes last.pt and best.pt in place, so a worker killed mid-write would leave a
        truncated last.pt that cannot be resumed. Here they are written under temporary names, then
        renamed: a rename is atomic, so last.pt is always the previous or the new complete checkpoint."""
        last, best = self.last, self.best
        partials = {last: last.with_name(f".{last.name}.partial"), best: best.with_name(f".{best.name}.partial")}
        self.last, self.best = partials[last], partials[best]
        try:
            saved = super().save_model()
        finally:
            self.last, self.best = last, best
        for final, partial in partials.items():
            if partial.exists():
                os.replace(partial, final)
        return saved

    def final_eval(self):
        """Ultralytics strips the optimizer from last.pt and marks it finished (epoch -1) here; a stage
        stopped early keeps its resumable last.pt instead, so that resuming the job continues it."""
        if not (self.keep_resumable and self.last.exists()):
            return super().final_eval()
        resumable = self.last.with_name("last.resumable.pt")
        shutil.copy2(self.last, resumable)
        try:
            return super().final_eval()
        finally:
            resumable.replace(self.last)

    def save_metrics(self, metrics: dict) -> None:
        super().save_metrics(metrics)
        row = {"epoch": self.epoch + 1, "time": round(time.time() - self.train_time_start, 3)}
        row.update({key: _plain(value) for key, value in metrics.items()})
        self.results_row = row
