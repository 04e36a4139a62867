"""Our DetectionTrainer subclass. With no stagerun options it trains exactly as Ultralytics does;
it only hands each results.csv row to callbacks as the epoch ends."""

from __future__ import annotations

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

    def save_metrics(self, metrics: dict) -> None:
        super().save_metrics(metrics)
        row = {"epoch": self.epoch + 1, "time": round(time.time() - self.train_time_start, 3)}
        row.update({key: _plain(value) for key, value in metrics.items()})
        self.results_row = row
