"""Our DetectionTrainer subclass. With no stagerun options it trains exactly as Ultralytics does;
it only hands each results.csv row to callbacks as the epoch ends."""

from __future__ import annotations

import time

from ultralytics.models.yolo.detect import DetectionTrainer

from shared.schemas.training import TrainingOptions
from worker.reporting import StageReporter
from worker.ultralytics_ext.starvation import StarvationCollector


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

    @classmethod
    def for_stage(cls, options: TrainingOptions | None, reporter: StageReporter | None) -> type[StagerunTrainer]:
        return type(cls.__name__, (cls,), {"options": options, "reporter": reporter})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.options is not None and self.options.starvation_batches:
            names = self.data["names"]
            report = StarvationCollector(len(names), names, self.options.starvation_batches, self.record_starvation)
            report.attach(self)

    def record_starvation(self, report: dict) -> None:
        self.record("starvation", report)

    def record(self, topic: str, value: object) -> None:
        """Store a fact about this run on the stage (``stage.info[topic]``), when running as a stage."""
        if self.reporter is not None:
            self.reporter.record(topic, value)

    def save_metrics(self, metrics: dict) -> None:
        super().save_metrics(metrics)
        row = {"epoch": self.epoch + 1, "time": round(time.time() - self.train_time_start, 3)}
        row.update({key: _plain(value) for key, value in metrics.items()})
        self.results_row = row
