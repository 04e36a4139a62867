"""``stagerun preset list|show``: the shipped pipelines from the package itself (no server needed); what
``show`` prints, with a dataset added, is a pipeline file that validates."""

from __future__ import annotations

import yaml

from client.cli import main
from shared.presets import preset_names
from shared.schemas import JobCreate


def test_preset_show_prints_a_pipeline_file_that_validates_once_a_dataset_is_named(capsys) -> None:
    for name in preset_names():
        assert main(["preset", "show", name]) == 0
        text = capsys.readouterr().out
        data = yaml.safe_load(text)
        assert "dataset" not in data and "# dataset: my-dataset" in text
        spec = JobCreate.model_validate({**data, "dataset": "x"})
        assert [s.type for s in spec.stages] == [s["type"] for s in data["stages"]]


def test_preset_list_names_every_preset_and_an_unknown_one_is_exit_2(capsys) -> None:
    assert main(["preset", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in preset_names()) and "train -> mine -> fine-tune" in out
    assert main(["preset", "show", "nope"]) == 2
    assert "no preset 'nope'" in capsys.readouterr().err
