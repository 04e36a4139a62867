"""The train stage: Ultralytics training through our trainer subclass, reporting to the database."""

from __future__ import annotations

from worker.stages.base import StageCancelled, StageRunner
from worker.ultralytics_ext.metrics import detection_summary


class TrainRunner(StageRunner):
    type = "train"

    def run(self) -> dict:
        from torch.utils.tensorboard import SummaryWriter
        from ultralytics import YOLO

        from worker.ultralytics_ext.trainer import StagerunTrainer

        context, spec, reporter = self.context, self.context.spec, self.context.reporter
        start_from = context.latest_or_model(prefer_latest=spec.start_from == "previous")
        model = YOLO(start_from)
        tensorboard = SummaryWriter(log_dir=str(context.stage_dir / "tensorboard"))
        published: set[int] = set()
        final: dict = {}
        cancelled = False

        def on_train_epoch_start(trainer) -> None:
            reporter.progress(trainer.epoch, trainer.epochs)

        def on_train_batch_end(trainer) -> None:
            nonlocal cancelled
            if reporter.cancel_requested():
                cancelled = trainer.stop = True  # Ultralytics stops between batches and keeps last.pt

        def on_fit_epoch_end(trainer) -> None:
            nonlocal cancelled
            if reporter.cancel_requested(force=True):  # never start another epoch after a cancel
                cancelled = trainer.stop = True
            row = trainer.results_row
            if row is not None and row["epoch"] not in published:
                published.add(row["epoch"])
                reporter.epoch_row(row, trainer.epochs)
                for key, value in row.items():
                    if key != "epoch" and isinstance(value, float):
                        tensorboard.add_scalar(key, value, row["epoch"])
                tensorboard.flush()
            elif trainer.validator is not None and trainer.validator.metrics is not None:
                final.update(detection_summary(trainer.validator.metrics, context.dataset.names))

        model.add_callback("on_train_epoch_start", on_train_epoch_start)
        model.add_callback("on_train_batch_end", on_train_batch_end)
        model.add_callback("on_fit_epoch_end", on_fit_epoch_end)
        try:
            model.train(trainer=StagerunTrainer.for_stage(spec, reporter), **self.ultralytics_args())
        finally:
            tensorboard.close()

        weights_dir = context.stage_dir / "weights"
        best = weights_dir / "best.pt"
        last = weights_dir / "last.pt"
        results = {
            "start_weights": start_from,
            "weights": context.relative(best) if best.exists() else None,
            "last_weights": context.relative(last) if last.exists() else None,
            "epochs_completed": len(published),
            "metrics": final or None,
        }
        reporter.results(results)
        if cancelled or reporter.cancel_requested(force=True):
            raise StageCancelled(f"cancelled after {len(published)} epoch(s)")
        if results["weights"] is None:
            raise RuntimeError("training finished without writing best.pt")
        return results
