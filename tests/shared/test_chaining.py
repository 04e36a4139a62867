"""The chaining rule (shared/stage_kinds/chaining.py): which earlier stage feeds an input, derived from what each
kind declares, and a 422 naming the field when nothing earlier produces it."""

import pytest

from shared.errors import InvalidSpec
from shared.stage_kinds import KINDS, STAGE_TYPES, Product
from shared.stage_kinds.chaining import producer

TYPES = ["train", "mine", "train", "evaluate", "export"]


def test_latest_producer_wins_and_weights_fall_back_to_the_model():
    assert producer(TYPES, 3, Product.WEIGHTS, "latest", "f") == 2
    assert producer(TYPES, 2, Product.DATASET, "from_stage", "f") == 1
    assert producer(TYPES, 0, Product.WEIGHTS, "previous", "f") is None
    assert producer(TYPES, 3, Product.WEIGHTS, "model", "f") is None
    assert producer(TYPES, 2, Product.DATASET, "job", "f") is None


def test_a_named_stage_must_be_earlier_and_produce_it():
    assert producer(TYPES, 4, Product.WEIGHTS, "stage:0", "f") == 0
    with pytest.raises(InvalidSpec, match="earlier stage") as later:
        producer(TYPES, 2, Product.WEIGHTS, "stage:3", "stages.2.start_from")
    assert later.value.field == "stages.2.start_from"
    with pytest.raises(InvalidSpec, match="mine stage; it produces dataset, hard_examples, not weights"):
        producer(TYPES, 3, Product.WEIGHTS, "stage:1", "f")


def test_a_dataset_nothing_earlier_produces_is_refused():
    with pytest.raises(InvalidSpec, match="needs a mine stage before this train stage") as missing:
        producer(["train", "train"], 1, Product.DATASET, "from_stage", "stages.1.data")
    assert missing.value.field == "stages.1.data"


def test_every_kind_declares_its_inputs_as_fields_of_its_spec():
    assert tuple(KINDS) == STAGE_TYPES
    for declared in KINDS.values():
        assert declared.spec.model_fields["type"].annotation.__args__ == (declared.type,)
        for field in declared.inputs:
            assert field in declared.spec.model_fields, (declared.type, field)


def test_every_kind_has_a_runner():
    from worker.stages import all_runners

    runners = all_runners()
    assert set(runners) == set(KINDS)
    assert all(runner.kind is KINDS[name] for name, runner in runners.items())
