"""The stage kinds: every kind's declaration, and what is derived from them (the spec union, the list of
types, which kind produces what). Adding a kind: a module here with its ``KIND`` (spec, submit-time check,
inputs, products), its name in ``KINDS`` below, and a runner in worker/stages."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from shared.stage_kinds import evaluate, export, kfold, mine, search, train
from shared.stage_kinds.base import Product, StageBase, StageKind, SubmitContext

KINDS: dict[str, StageKind] = {
    k.type: k for k in (train.KIND, evaluate.KIND, mine.KIND, export.KIND, search.KIND, kfold.KIND)
}
STAGE_TYPES: tuple[str, ...] = tuple(KINDS)
StageSpec = Annotated[Union[tuple(k.spec for k in KINDS.values())], Field(discriminator="type")]  # noqa: UP007


def kind(stage_type: str) -> StageKind:
    return KINDS[stage_type]


def produces(stage_type: str, product: Product) -> bool:
    return product in KINDS[stage_type].produces


__all__ = ["KINDS", "STAGE_TYPES", "Product", "StageBase", "StageKind", "StageSpec", "SubmitContext", "kind", "produces"]
