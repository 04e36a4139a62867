"""The train stage: Ultralytics training through our trainer subclass, reporting to the database.

A stage that runs again (its worker was lost, its job was resumed, it ran out of GPU memory) resumes
from its own ``weights/last.pt``, losing at most the epoch in progress."""

from __future__ import annotations

import csv
import gc
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from shared.stage_kinds.train import KIND as TRAIN
from worker.gpu_tiers import pick_tier, scaled_model
from worker.oom_recovery import MemoryKnobs, is_out_of_memory, next_oom_step
from worker.stages.base import StageCancelled, StageRunner
from worker.trial_pruning import TrialPruning
from worker.ultralytics_ext.metrics import detection_summary

log = logging.getLogger(__name__)


@dataclass
class _Progress:
    """What the callbacks saw, kept across the attempts of one stage process."""

    published: set[int] = field(default_factory=set)
    final: dict = field(default_factory=dict)
    cancelled: bool = False
    pruned: dict | None = None  # a search trial stopped by its pruner (worker/trial_pruning.py)
    epoch: int = 0  # 0-based epoch in progress
    batches: int = 0  # batches of that epoch done
    knobs: MemoryKnobs | None = None


def resume_point(last: Path, epochs: int) -> int | None:
    """The 1-based epoch a resume from ``last`` would start at, or None when there is nothing to resume
    (no checkpoint, or one whose training already reached ``epochs``)."""
    if not last.is_file():
        return None
    import torch

    try:
        checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    except Exception as exc:  # written before checkpoints were saved atomically, or damaged since
        log.warning("cannot resume from %s (%s); training from the start weights", last, exc)
        return None
    start = int(checkpoint.get("epoch", -1)) + 2
    return start if 1 < start <= epochs else None


def checkpointed_rows(results_csv: Path, resume_at: int) -> list[dict]:
    """The results.csv rows of the epochs before ``resume_at`` (1-based), as the trainer hands them over:
    ``epoch`` an int, every other column a float. The last row per epoch wins (a resumed run appends)."""
    if not results_csv.is_file():
        return []
    rows: dict[int, dict] = {}
    with results_csv.open(newline="") as handle:
        for record in csv.DictReader(handle):
            try:
                row = {key.strip(): float(value) for key, value in record.items()}
                epoch = int(row["epoch"])
            except (AttributeError, KeyError, TypeError, ValueError):
                continue  # a row cut short (or run on) by the kill
            if epoch < resume_at:
                rows[epoch] = {**row, "epoch": epoch}
    return [rows[epoch] for epoch in sorted(rows)]


def trim_results_csv(results_csv: Path, resume_at: int) -> int:
    """Drop the rows of epochs ``resume_at`` and later (1-based): a row written before its checkpoint failed
    to save, or a partial one cut by a kill, would otherwise stay beside the row the resumed run writes.
    Returns how many rows were dropped. Written atomically."""
    if not results_csv.is_file():
        return 0
    lines = results_csv.read_text().splitlines(keepends=True)
    if not lines:
        return 0
    kept = [lines[0]]
    for line in lines[1:]:
        try:
            epoch = int(float(line.split(",", 1)[0]))
        except ValueError:
            continue  # a row cut short
        if epoch < resume_at:
            kept.append(line)
    dropped = len(lines) - len(kept)
    if dropped:
        partial = results_csv.with_name(f".{results_csv.name}.partial")
        partial.write_text("".join(kept))
        partial.replace(results_csv)
    return dropped


def free_vram_gb(device: str) -> float | None:
    """Free memory of the first GPU in ``device`` ('0', 'cuda:1', '0,1'), None on CPU."""
    import torch

    if not torch.cuda.is_available() or device.lower() in ("cpu", "mps"):
        return None
    index = int(device.lower().removeprefix("cuda:").split(",")[0] or 0)
    return torch.cuda.mem_get_info(index)[0] / 1024**3


def _injected_oom(epoch: int) -> BaseException:
    import torch

    return torch.cuda.OutOfMemoryError(
        f"CUDA out of memory at the start of epoch {epoch} (injected by STAGERUN_FAULT_OOM_EPOCHS, test only)"
    )


class TrainRunner(StageRunner):
    kind = TRAIN

    def run(self) -> dict:
        from torch.utils.tensorboard import SummaryWriter

        context, spec, reporter = self.context, self.context.spec, self.context.reporter
        start_from = context.weights
        args = self.ultralytics_args()
        if isinstance(args.get("freeze"), str):
            args["freeze"] = self._freeze_share(start_from, args["freeze"])
        if spec.batch == "auto":
            start_from = self._apply_gpu_tier(start_from, args)
        last = context.stage_dir / "weights" / "last.pt"
        progress = _Progress()
        faults = Counter(context.settings.oom_fault_epochs)
        oom_steps: list[dict] = reporter.info().get("oom_recovery", [])
        self._reapply_oom_steps(oom_steps, args)
        tensorboard = SummaryWriter(log_dir=str(context.stage_dir / "tensorboard"))
        self.pruning = TrialPruning.for_stage(context.settings, context.stage_id)
        try:
            while True:
                resume_at = resume_point(last, spec.epochs)
                if resume_at is not None:
                    reporter.append("resumed", {"from_epoch": resume_at, "checkpoint": context.relative(last)})
                    self._publish_checkpointed_rows(resume_at, progress)
                    trim_results_csv(context.stage_dir / "results.csv", resume_at)
                try:
                    self._train(start_from, args, last if resume_at else None, progress, faults, tensorboard)
                    break
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    self._shrink_after_oom(exc, args, progress, oom_steps)
        finally:
            tensorboard.close()

        weights_dir = context.stage_dir / "weights"
        best = weights_dir / "best.pt"
        results = {
            "start_weights": context.shown(start_from),
            "weights": context.relative(best) if best.exists() else None,
            "last_weights": context.relative(last) if last.exists() else None,
            "epochs_completed": max(progress.published, default=0),
            "metrics": progress.final or None,
        }
        reporter.results(results)
        if progress.pruned is not None:
            raise StageCancelled(f"pruned by its search: {progress.pruned['reason']}")
        if progress.cancelled or reporter.cancel_requested(force=True):
            raise StageCancelled(f"cancelled after {results['epochs_completed']} epoch(s)")
        if results["weights"] is None:
            raise RuntimeError("training finished without writing best.pt")
        return results

    def _freeze_share(self, start_from: str, share: str) -> int:
        """A freeze share ('50%') of a model whose depth was unknown at submit (a .pt): the layer count it means."""
        from ultralytics import YOLO

        from shared.stage_kinds.training_options import freeze_layers

        layers = freeze_layers(share, len(YOLO(start_from).model.model))
        self.context.reporter.record("freeze", {"share": share, "layers": layers})
        return layers

    def _publish_checkpointed_rows(self, resume_at: int, progress: _Progress) -> None:
        """Ultralytics writes an epoch's results.csv row and last.pt before our epoch-end callback stores the
        row; a worker killed in between would leave that epoch without a database row, since the resumed run
        starts after it. Store every row the checkpoint covers from results.csv (rows are upserted)."""
        epochs = self.context.spec.epochs
        for row in checkpointed_rows(self.context.stage_dir / "results.csv", resume_at):
            if row["epoch"] not in progress.published:
                self.context.reporter.epoch_row(row, epochs)
                progress.published.add(row["epoch"])

    def _train(self, start_from: str, args: dict, resume: Path | None, progress: _Progress, faults, tensorboard):
        from ultralytics import YOLO

        from worker.ultralytics_ext.trainer import StagerunTrainer

        context, reporter = self.context, self.context.reporter

        def on_train_start(trainer) -> None:
            progress.knobs = MemoryKnobs(
                batch=int(trainer.batch_size),
                imgsz=int(trainer.args.imgsz),
                cache=trainer.args.cache,
                workers=int(trainer.args.workers),
            )

        def on_train_epoch_start(trainer) -> None:
            progress.epoch = trainer.epoch
            progress.batches = 0
            reporter.progress(trainer.epoch, trainer.epochs)
            if faults[trainer.epoch + 1] > 0:
                faults[trainer.epoch + 1] -= 1
                raise _injected_oom(trainer.epoch + 1)

        def on_train_batch_end(trainer) -> None:
            progress.batches += 1
            if reporter.cancel_requested():
                progress.cancelled = trainer.stop = trainer.keep_resumable = True  # stops between batches
                trainer.partial_epoch = progress.batches < len(trainer.train_loader)

        def on_fit_epoch_end(trainer) -> None:
            row = trainer.results_row
            if row is not None and row["epoch"] not in progress.published:
                progress.published.add(row["epoch"])
                reporter.epoch_row(row, trainer.epochs)
                if self.pruning is not None and (decision := self.pruning.after_epoch(row)) is not None:
                    reporter.record("pruned", decision)
                    progress.pruned, trainer.stop = decision, True
                for key, value in row.items():
                    if key != "epoch" and isinstance(value, float):
                        tensorboard.add_scalar(key, value, row["epoch"])
                tensorboard.flush()
            elif trainer.validator is not None and trainer.validator.metrics is not None:
                progress.final.update(detection_summary(trainer.validator.metrics, context.dataset.names))
            # never start another epoch after a cancel; asked after the epoch's row is stored, so a cancel that a
            # reader sees arrive at epoch k stops the stage at k + 1 at the latest
            if reporter.cancel_requested(force=True):
                progress.cancelled = trainer.stop = trainer.keep_resumable = True

        model = YOLO(str(resume) if resume else start_from)
        model.add_callback("on_train_start", on_train_start)
        model.add_callback("on_train_epoch_start", on_train_epoch_start)
        model.add_callback("on_train_batch_end", on_train_batch_end)
        model.add_callback("on_fit_epoch_end", on_fit_epoch_end)
        extra = {"resume": True} if resume else {}
        model.train(trainer=StagerunTrainer.for_stage(context.spec, reporter), **args, **extra)

    def _shrink_after_oom(self, exc: Exception, args: dict, progress: _Progress, steps: list[dict]) -> None:
        """Record the out-of-memory error and shrink one knob in ``args``; raise when nothing is left."""
        epoch = progress.epoch + 1
        knobs = progress.knobs or MemoryKnobs(
            batch=args["batch"] if isinstance(args["batch"], int) and args["batch"] > 0 else 16,
            imgsz=args["imgsz"],
            cache=args.get("cache", False),
            workers=args.get("workers", 8),
        )
        step = next_oom_step(knobs, self.context.spec.imgsz)
        entry = {"epoch": epoch, "error": str(exc).splitlines()[0][:300]}
        if step is None:
            entry["action"] = "gave up: nothing left to shrink"
            steps.append(entry)
            self.context.reporter.record("oom_recovery", steps)
            raise RuntimeError(
                f"out of GPU memory at epoch {epoch} with batch={knobs.batch} imgsz={knobs.imgsz} "
                f"cache={knobs.cache} workers={knobs.workers}: nothing left to shrink after "
                f"{len(steps) - 1} recovery step(s)"
            ) from exc
        entry.update(action=f"{step.knob} {step.old} -> {step.new}", knob=step.knob, old=step.old, new=step.new)
        steps.append(entry)
        self.context.reporter.record("oom_recovery", steps)
        log.warning("out of memory at epoch %d; %s, resuming from last.pt", epoch, entry["action"])
        args.update(batch=step.knobs.batch, imgsz=step.knobs.imgsz, cache=step.knobs.cache, workers=step.knobs.workers)
        progress.knobs = None
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    @staticmethod
    def _reapply_oom_steps(steps: list[dict], args: dict) -> None:
        """A stage that runs again (lost worker, resumed job) starts with what memory recovery already shrank."""
        for step in steps:
            if step.get("knob") in ("batch", "imgsz", "cache", "workers"):
                args[step["knob"]] = step["new"]

    def _apply_gpu_tier(self, start_from: str, args: dict) -> str:
        """``batch: auto``: batch, imgsz ceiling and (for an unscaled family config) model size from free VRAM."""
        free = free_vram_gb(self.context.device)
        tier = pick_tier(free)
        args["batch"] = tier.batch
        args["imgsz"] = min(args["imgsz"], tier.imgsz)
        model = scaled_model(start_from, tier.model_scale) or start_from
        self.context.reporter.record(
            "gpu_tier",
            {
                "tier": tier.name,
                "free_vram_gb": None if free is None else round(free, 2),
                "batch": args["batch"],
                "imgsz": args["imgsz"],
                "model": model,
                "suggested_model_scale": tier.model_scale,
            },
        )
        return model
