"""Which data.yaml a ``data: from_stage`` train stage gets at run time, and the clear errors when there is none."""

import pytest

from shared.errors import InvalidSpec
from shared.models import Stage
from shared.stage_kinds import Product
from worker.stage_process import _produced


def mine_stage(index, state="succeeded", total=3, path="jobs/j/02-mine/dataset/data.yaml"):
    return Stage(index=index, type="mine", state=state, results={"dataset_yaml": path, "dataset": {"total": total}})


def test_the_producing_stage_gives_its_dataset_yaml(embedded):
    target = embedded.artifacts_root / "jobs" / "j" / "02-mine" / "dataset"
    target.mkdir(parents=True)
    (target / "data.yaml").write_text("names: [a]\n")
    assert _produced(embedded, mine_stage(1), Product.DATASET, "data") == target / "data.yaml"


def test_an_unfinished_or_empty_producer_is_a_clear_error(embedded):
    with pytest.raises(InvalidSpec, match="did not produce dataset") as missing:
        _produced(embedded, mine_stage(1, state="failed"), Product.DATASET, "data")
    assert missing.value.field == "data"
    with pytest.raises(InvalidSpec, match="found no hard examples"):
        _produced(embedded, mine_stage(1, total=0), Product.DATASET, "data")


def test_a_dataset_path_leaving_the_artifacts_root_is_refused(embedded):
    with pytest.raises(Exception, match="must not contain"):
        _produced(embedded, mine_stage(1, path="../../etc/data.yaml"), Product.DATASET, "data")
