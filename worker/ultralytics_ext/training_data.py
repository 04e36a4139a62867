"""The data side of stagerun's trainer: thin-box-safe augmentation, rare-class copy-paste and weighted
sampling, as overrides of ``DetectionTrainer``'s dataset and loader hooks plus two epoch callbacks.

With ``sampling``, ``copy_paste_rare`` and ``thin_boxes`` all unset it changes nothing: Ultralytics builds
its own dataset and loader. What was used and what augmentation did in the first epoch are recorded on the
stage (topics ``sampling``, ``boxes_removed_by_augmentation``, ``boxes_kept_by_augmentation``,
``copy_paste_rare``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from ultralytics.utils import LOGGER
from ultralytics.utils.plotting import plot_images
from ultralytics.utils.torch_utils import unwrap_model

from shared.class_weights import class_index
from worker.ultralytics_ext.dataset import TALLY_KEY, DataOptions, training_dataset
from worker.ultralytics_ext.sampling import WeightedEpochSampler, install_weighted_sampler, weighted_sampler

COPY_PASTE_EXAMPLES = 3
COPY_PASTE_DIR = "copy_paste_examples"


def pasted_images(batch: dict[str, Any], tallies: tuple[dict, ...]) -> dict[str, Any] | None:
    """The images of a collated batch that received pastes, as a batch of their own for ``plot_images``."""
    chosen = [i for i, tally in enumerate(tallies) if tally["pasted"]]
    if not chosen:
        return None
    index = torch.as_tensor(chosen)
    rows = torch.isin(batch["batch_idx"], index.to(batch["batch_idx"].dtype))
    renumber = {old: new for new, old in enumerate(chosen)}
    return {
        "img": batch["img"][index],
        "cls": batch["cls"][rows],
        "bboxes": batch["bboxes"][rows],
        "batch_idx": torch.tensor([renumber[int(i)] for i in batch["batch_idx"][rows]], dtype=torch.float32),
    }


class TrainingDataMixin:
    """Mixed into ``StagerunTrainer`` ahead of ``DetectionTrainer``; reads ``self.options`` (the stage spec)."""

    weighted_sampler: WeightedEpochSampler | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._first_epoch_tally: dict[str, Counter] | None = None
        self._examples: list[str] = []
        self.add_callback("on_train_epoch_start", TrainingDataMixin._start_data_epoch)
        self.add_callback("on_train_epoch_end", TrainingDataMixin._end_data_epoch)

    def class_names(self) -> list[str]:
        return [str(name) for name in self.data["names"].values()]

    def data_options(self) -> DataOptions | None:
        """The dataset options of this stage, or None when every one is off (plain Ultralytics)."""
        options = self.options
        if options is None or (
            options.thin_boxes is None and options.copy_paste_rare is None and options.sampling is None
        ):
            return None
        paste = options.copy_paste_rare
        ids: tuple[int, ...] = ()
        if paste is not None:
            names = self.class_names()
            ids = tuple(class_index(key, names, f"copy_paste_rare.classes.{i}") for i, key in enumerate(paste.classes))
        return DataOptions(thin_boxes=options.thin_boxes, copy_paste=paste, copy_paste_class_ids=ids)

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        data_options = self.data_options() if mode == "train" else None
        if data_options is None:
            return super().build_dataset(img_path, mode, batch)
        stride = max(int(unwrap_model(self.model).stride.max()), 32)
        return training_dataset(self.args, img_path, batch, self.data, stride, data_options)

    def get_dataloader(self, dataset_path: str, batch_size: int = 16, rank: int = 0, mode: str = "train"):
        loader = super().get_dataloader(dataset_path, batch_size, rank, mode)
        spec = self.options.sampling if mode == "train" and self.options is not None else None
        if spec is None:
            return loader
        if rank != -1:
            raise ValueError("weighted sampling needs training on one device (no DDP)")
        label_classes = [label["cls"] for label in loader.dataset.labels]
        sampler, report = weighted_sampler(label_classes, self.class_names(), spec, seed=self.args.seed)
        install_weighted_sampler(loader, sampler)  # also after an out-of-memory retry rebuilds the loader
        self.weighted_sampler = sampler
        self.record("sampling", report)
        return loader

    def preprocess_batch(self, batch: dict) -> dict:
        tallies = batch.pop(TALLY_KEY, None)
        if tallies is not None and self._first_epoch_tally is not None:
            for tally in tallies:
                for kind, counts in tally.items():
                    self._first_epoch_tally[kind].update(counts)
            if len(self._examples) < COPY_PASTE_EXAMPLES and (examples := pasted_images(batch, tallies)):
                fname = self.save_dir / COPY_PASTE_DIR / f"batch{len(self._examples)}.jpg"
                fname.parent.mkdir(parents=True, exist_ok=True)
                plot_images(labels=examples, fname=fname, names=self.data["names"])
                self._examples.append(f"{COPY_PASTE_DIR}/{fname.name}")
        return super().preprocess_batch(batch)

    def _start_data_epoch(self) -> None:
        if self.weighted_sampler is not None:
            self.weighted_sampler.set_epoch(self.epoch)
        if self.epoch == self.start_epoch and self.data_options() is not None:  # again after an OOM retry
            self._first_epoch_tally = {"removed": Counter(), "kept": Counter(), "pasted": Counter()}
            self._examples = []

    def _end_data_epoch(self) -> None:
        tally, self._first_epoch_tally = self._first_epoch_tally, None
        if tally is None:
            return
        names = self.class_names()
        removed = {name: tally["removed"][i] for i, name in enumerate(names)}
        self.record("boxes_removed_by_augmentation", removed)
        self.record("boxes_kept_by_augmentation", {name: tally["kept"][i] for i, name in enumerate(names)})
        LOGGER.info(f"Boxes in frame that augmentation removed in the first epoch: {removed}")
        if self.options.copy_paste_rare is not None:
            pasted = {names[i]: n for i, n in sorted(tally["pasted"].items())}
            self.record("copy_paste_rare", {"pasted_first_epoch": pasted, "examples": self._examples})
