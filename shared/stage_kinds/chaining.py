"""Which earlier stage feeds a stage's input: the one rule the API checks at submit and the worker follows at
run time, derived from what each kind declares it consumes and produces."""

from __future__ import annotations

from collections.abc import Sequence

from shared.errors import InvalidSpec
from shared.stage_kinds import KINDS
from shared.stage_kinds.base import Product

OWN = {Product.WEIGHTS: "model", Product.DATASET: "job"}
"""The reference that names the job's own model or dataset rather than a stage's output."""


def producer(types: Sequence[str], index: int, product: Product, ref: str, field: str) -> int | None:
    """The index of the earlier stage whose ``product`` the reference ``ref`` (a spec field's value) names, or
    None for the job's own model or dataset. 'stage:<n>' names stage n; 'latest', 'previous' and 'from_stage'
    the latest earlier stage that produces it (weights fall back to the job's model; a dataset does not).
    A reference to something no earlier stage produces is an ``InvalidSpec`` naming ``field``."""
    if ref == OWN.get(product):
        return None
    if ref.startswith("stage:"):
        source = int(ref.removeprefix("stage:"))
        if source >= index:
            raise InvalidSpec(f"'{ref}': a stage can only use what an earlier stage produced (this is stage {index})",
                              field=field)
        if product not in KINDS[types[source]].produces:
            made = ", ".join(sorted(KINDS[types[source]].produces)) or "nothing a later stage can use"
            raise InvalidSpec(f"'{ref}': stage {source} is a {types[source]} stage; it produces {made}, not {product}",
                              field=field)
        return source
    for source in range(index - 1, -1, -1):
        if product in KINDS[types[source]].produces:
            return source
    if product is Product.WEIGHTS:
        return None
    makers = sorted(t for t, k in KINDS.items() if product in k.produces)
    raise InvalidSpec(
        f"'{ref}' needs a {' or '.join(makers)} stage before this {types[index]} stage to produce a {product}",
        field=field,
    )


def input_producers(stages: Sequence, index: int, field_prefix: str = "") -> dict[str, int | None]:
    """Every input of stage ``index``: its spec field -> the producing stage's index (None: the job's own)."""
    types = [stage.type for stage in stages]
    stage = stages[index]
    return {
        name: producer(types, index, product, getattr(stage, name), f"{field_prefix}{name}")
        for name, product in KINDS[stage.type].inputs.items()
    }
