"""A user's mistake on the command line is one line naming the file and the problem, exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from client.cli import failure_cause, main


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("stages: [unclosed\n", "not valid YAML or JSON at line"),
        ("- a\n- b\n", "holds a mapping"),
        ("dataset: x\nmodel: yolov8n.yaml\nstages: [{type: train, epochs: -1, imgsz: 33}]\n", "2 problem(s)"),
    ],
)
def test_bad_pipeline_files_are_one_message_and_exit_2(tmp_path: Path, capsys, content, expected) -> None:
    path = tmp_path / "pipeline.yaml"
    if content is not None:
        path.write_text(content)
    for command in ("run", "submit") if "problem(s)" not in expected else ("run",):  # submit: the API checks it
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}") and expected in err and "Traceback" not in err, err


def test_no_traceback_from_the_installed_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "client.cli", "run", str(tmp_path / "missing.yaml")], capture_output=True, text=True
    )
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path / 'missing.yaml'}: no such file"


def test_a_failed_stage_shows_its_cause_not_the_log_tail() -> None:
    error = "stage process ended with signal 9 (SIGKILL):\n  Epoch 3/10 ...\n  100%|#####| 12/12"
    assert failure_cause(error) == "stage process ended with signal 9 (SIGKILL):"
    assert failure_cause("ValueError: freeze names layers [999]\nmore detail") == "ValueError: freeze names layers [999]"


def test_every_problem_the_api_returned_is_printed() -> None:
    import httpx

    from client.api_client import ApiError, _check

    body = {
        "error": {
            "code": "invalid_spec",
            "message": "dataset 'bad' did not pass validation: labels/a.txt:2: 4 fields (and 1 more problem(s))",
            "field": "dataset",
            "details": [
                {"field": "dataset", "message": "4 fields", "file": "labels/a.txt", "line": 2},
                {"field": "dataset", "message": "unreadable image", "file": "images/b.png", "line": None},
            ],
        }
    }
    with pytest.raises(ApiError) as error:
        _check(httpx.Response(422, json=body))
    assert str(error.value).splitlines()[1:] == ["  labels/a.txt:2: 4 fields", "  images/b.png: unreadable image"]
