"""Which data.yaml a ``data: from_stage`` train stage gets, and the clear errors when there is none."""

import pytest

from shared.errors import InvalidSpec
from shared.models import Stage
from worker.stage_process import _mined_dataset_yaml


def mine_stage(index, state="succeeded", total=3, path="jobs/j/02-mine/dataset/data.yaml"):
    return Stage(index=index, type="mine", state=state, results={"dataset_yaml": path, "dataset": {"total": total}})


def test_latest_succeeded_mine_stage_wins(embedded):
    for folder in ("02-mine", "04-mine"):
        target = embedded.artifacts_root / "jobs" / "j" / folder / "dataset"
        target.mkdir(parents=True)
        (target / "data.yaml").write_text("names: [a]\n")
    earlier = [
        Stage(index=0, type="train", state="succeeded", results={"weights": "x.pt"}),
        mine_stage(1),
        mine_stage(2, path="jobs/j/04-mine/dataset/data.yaml"),
        mine_stage(3, state="failed", path="jobs/j/99-mine/dataset/data.yaml"),
    ]
    assert _mined_dataset_yaml(embedded, earlier) == (embedded.artifacts_root / "jobs/j/04-mine/dataset/data.yaml")


def test_no_mine_stage_or_nothing_mined_is_a_clear_error(embedded):
    with pytest.raises(InvalidSpec, match="no earlier mine stage") as missing:
        _mined_dataset_yaml(embedded, [Stage(index=0, type="train", state="succeeded", results={})])
    assert missing.value.field == "data"
    with pytest.raises(InvalidSpec, match="found no hard examples"):
        _mined_dataset_yaml(embedded, [mine_stage(1, total=0)])


def test_a_dataset_path_leaving_the_artifacts_root_is_refused(embedded):
    with pytest.raises(Exception, match="must not contain"):
        _mined_dataset_yaml(embedded, [mine_stage(1, path="../../etc/data.yaml")])


def test_the_hard_example_dataset_passes_the_validator_before_training(embedded, tiny_dataset):
    from shared.references import resolve_dataset
    from shared.synthetic import make_dataset
    from worker.stage_process import _check_mined_dataset

    job_dataset = resolve_dataset(embedded, tiny_dataset)
    mined_root = embedded.artifacts_root / "jobs" / "j" / "02-mine" / "dataset"
    make_dataset(mined_root, train=3, val=0, size=64, seed=7)
    val = job_dataset.splits["val"][0]
    (mined_root / "data.yaml").write_text(f"train: images/train\nval: {val}\nnames: [square, disc, bar]\n")
    _check_mined_dataset(embedded, mined_root / "data.yaml", job_dataset)  # its val is the job's own: fine
    next((mined_root / "labels" / "train").glob("*.txt")).write_text("0 0.5 0.5 0.1\n")
    with pytest.raises(InvalidSpec, match="hard-example dataset did not pass validation") as error:
        _check_mined_dataset(embedded, mined_root / "data.yaml", job_dataset)
    assert error.value.field == "data" and "4 fields; a box line has 5" in error.value.message
