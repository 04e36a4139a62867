"""Our DetectionTrainer subclass. With no stagerun options it trains exactly as Ultralytics does;
it only hands each results.csv row to callbacks as the epoch ends."""

from __future__ import annotations

import shutil
import time

from ultralytics.models.yolo.detect import DetectionTrainer


def _plain(value: object) -> float | int | str:
    if hasattr(value, "item"):
        value = value.item()
    return value if isinstance(value, int | str) else float(value)


class StagerunTrainer(DetectionTrainer):
    """``results_row`` holds the newest results.csv row (the same columns and values Ultralytics writes),
    so an ``on_fit_epoch_end`` callback can store it the moment the epoch ends."""

    results_row: dict | None = None
    keep_resumable: bool = False  # set by a stage that stops early (cancel): last.pt must stay resumable

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
