"""The weighted sampler: share of draws within a binomial bound, the ramp per epoch, determinism, and the
epoch each pass is drawn for inside Ultralytics' real endless loader (prefetching workers, reset, rebuild)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset
from ultralytics.data.build import build_dataloader

from shared.stage_kinds.training_options import Sampling
from worker.ultralytics_ext.sampling import (
    EpochRepeatSampler,
    WeightedEpochSampler,
    install_weighted_sampler,
    weighted_sampler,
)

RARE_IMAGES, COMMON_IMAGES, RARE_WEIGHT = 10, 190, 8.0


def rare_weights() -> np.ndarray:
    return np.array([RARE_WEIGHT] * RARE_IMAGES + [1.0] * COMMON_IMAGES)


def test_share_of_draws_on_rare_images_within_five_sigma() -> None:
    sampler = WeightedEpochSampler(rare_weights(), seed=7)
    draws = np.concatenate([sampler.draw(epoch) for epoch in range(50)])  # 50 epochs of 200 draws
    expected = RARE_IMAGES * RARE_WEIGHT / (RARE_IMAGES * RARE_WEIGHT + COMMON_IMAGES)  # 80 / 270
    hits = int((draws < RARE_IMAGES).sum())
    sigma = math.sqrt(len(draws) * expected * (1 - expected))
    assert abs(hits - len(draws) * expected) < 5 * sigma
    uniform_share = RARE_IMAGES / (RARE_IMAGES + COMMON_IMAGES)
    assert hits > 4 * uniform_share * len(draws)  # 0.296 vs 0.05 of draws


def test_epoch_length_is_the_dataset_and_ramp_starts_uniform() -> None:
    sampler = WeightedEpochSampler(rare_weights(), seed=0, ramp_epochs=4)
    assert len(sampler) == len(sampler.draw(3)) == RARE_IMAGES + COMMON_IMAGES
    assert sampler.weights_for(0).tolist() == [1.0] * 200
    assert sampler.weights_for(2)[:RARE_IMAGES].tolist() == [4.5] * RARE_IMAGES
    assert sampler.weights_for(9)[:RARE_IMAGES].tolist() == [RARE_WEIGHT] * RARE_IMAGES
    assert (sampler.draw(0) == WeightedEpochSampler(np.ones(200), seed=0).draw(0)).all()  # epoch 0 is uniform


def test_draws_depend_on_seed_and_epoch_only() -> None:
    a, b = WeightedEpochSampler(rare_weights(), seed=3), WeightedEpochSampler(rare_weights(), seed=3)
    b.set_epoch(5)
    assert list(b) == a.draw(5).tolist()
    assert (a.draw(1) != a.draw(2)).any()
    assert (a.draw(1) != WeightedEpochSampler(rare_weights(), seed=4).draw(1)).any()


def test_refuses_empty_or_non_positive_weights() -> None:
    for weights in ([], [1.0, 0.0], [[1.0]]):
        with pytest.raises(ValueError, match="positive"):
            WeightedEpochSampler(weights)


class Indices(Dataset):
    def __len__(self) -> int:
        return 24

    def __getitem__(self, index: int) -> int:
        return index


def loader_with_sampler(workers: int, seed: int = 11) -> tuple:
    loader = build_dataloader(Indices(), batch=5, workers=workers, shuffle=True, rank=-1, device="cpu")
    sampler = WeightedEpochSampler(np.linspace(1.0, 6.0, 24), seed=seed, ramp_epochs=2)
    install_weighted_sampler(loader, sampler)
    return loader, sampler


def one_epoch(loader) -> list[int]:
    return torch.cat(list(loader)).tolist()


@pytest.mark.parametrize("workers", [0, 2])
def test_every_epoch_of_the_endless_loader_is_drawn_for_that_epoch(workers: int) -> None:
    """With 2 workers the loader prefetches the next epoch's first batches before the epoch starts; a
    reset (what close_mosaic does) restarts the stream mid-way; each epoch must still get its own draw."""
    loader, sampler = loader_with_sampler(workers)
    assert isinstance(loader.batch_sampler, EpochRepeatSampler) and loader.sampler is sampler
    assert len(loader) == 5  # ceil(24 / 5) batches, as without weights
    try:
        for epoch in range(5):
            sampler.set_epoch(epoch)  # the trainer's on_train_epoch_start callback
            if epoch == 3:
                loader.reset()
            assert one_epoch(loader) == sampler.draw(epoch).tolist()
    finally:
        loader.close()


def test_a_rebuilt_loader_starts_at_the_trainers_epoch() -> None:
    """After an out-of-memory retry Ultralytics builds a new loader and reruns the epoch."""
    first, sampler = loader_with_sampler(workers=0)
    sampler.set_epoch(0)
    one_epoch(first)
    rebuilt, new_sampler = loader_with_sampler(workers=0)
    new_sampler.set_epoch(1)
    assert one_epoch(rebuilt) == sampler.draw(1).tolist()


def test_install_refuses_a_started_loader() -> None:
    loader, sampler = loader_with_sampler(workers=0)
    next(iter(loader))
    with pytest.raises(RuntimeError, match="before the loader is first iterated"):
        install_weighted_sampler(loader, sampler)


def test_weighted_sampler_from_labels_reports_weights_and_shares() -> None:
    names = ["common", "rare"]
    labels = [np.array([[0.0]])] * 9 + [np.array([[0.0], [1.0]])]  # class 1 in one image of ten
    sampler, report = weighted_sampler(labels, names, Sampling(weights={"rare": 9}), seed=0)
    assert sampler.weights.tolist() == [1.0] * 9 + [9.0]
    assert report["class_weights"] == {"common": 1.0, "rare": 9.0}
    assert report["draw_share"] == {"common": 1.0, "rare": 0.5}  # 9 / (9 + 9)
    assert report["draw_share_uniform"] == {"common": 1.0, "rare": 0.1}
    # 10 draws, half on the rare image: every image has one "common", so 10 of those; 10 * 0.5 "rare"
    assert report["instances_per_epoch"] == {"common": 10.0, "rare": 5.0}
    assert report["instances_per_epoch_uniform"] == {"common": 10.0, "rare": 1.0}
