"""Stratified folds: every class with at least k images lands in every fold, the folds are within one image of
the same size, and the same seed gives the same folds."""

from __future__ import annotations

import random

import pytest

from worker.folds import stratified_folds


def labelled(n: int, rare: int, seed: int = 0) -> list[frozenset[int]]:
    rng = random.Random(seed)
    images = [frozenset({0} | ({1} if rng.random() < 0.5 else set())) for _ in range(n)]
    for index in rng.sample(range(n), rare):  # class 2 in only `rare` images
        images[index] = images[index] | {2}
    return images


@pytest.mark.parametrize(("n", "rare", "k"), [(50, 5, 5), (40, 3, 3), (9, 2, 2), (101, 7, 4)])
def test_a_rare_class_lands_in_every_fold_and_sizes_stay_even(n, rare, k):
    images = labelled(n, rare)
    folds = stratified_folds(images, k, seed=3)
    sizes = [folds.count(fold) for fold in range(k)]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == n
    holders = {folds[i] for i, classes in enumerate(images) if 2 in classes}
    assert holders == set(range(k))


def test_same_seed_same_folds_and_images_without_labels_are_placed():
    images = [*labelled(20, 4), frozenset(), frozenset()]
    assert stratified_folds(images, 3, seed=1) == stratified_folds(images, 3, seed=1)
    assert -1 not in stratified_folds(images, 3, seed=1)


def test_fewer_images_than_folds_is_refused():
    with pytest.raises(ValueError, match="cannot make 5 folds"):
        stratified_folds([frozenset({0})] * 3, 5)
