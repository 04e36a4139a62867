"""``stagerun dataset register|list|show`` against the API (the same app, in process)."""

from __future__ import annotations

import json
import shutil

from client.synthetic import make_dataset


def test_register_a_folder_then_again_then_list_and_show(cli, capsys, tiny_dataset):
    assert cli(["dataset", "register", tiny_dataset, "--name", "tiny one"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("registered dataset:") and "(tiny one): valid" in first and "train 8" in first
    reference = first.split()[1]
    assert cli(["dataset", "register", tiny_dataset]) == 0
    assert capsys.readouterr().out.startswith(f"already registered, validated again: {reference}")
    assert cli(["dataset", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:3] == ["reference", "name", "valid"]
    assert [line.split()[0] for line in listing[1:]] == [reference]
    assert cli(["dataset", "show", reference, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["reference"] == reference and shown["profile"]["classes"]


def test_an_invalid_folder_exits_1_and_names_the_file_and_line(cli, capsys, embedded):
    make_dataset(embedded.datasets_root / "broken", train=2, val=2, size=64, seed=0)
    (embedded.datasets_root / "broken" / "labels" / "train" / "train_0000.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    assert cli(["dataset", "register", "broken"]) == 1
    out = capsys.readouterr().out
    assert "INVALID (1 errors)" in out and "labels/train/train_0000.txt:1:" in out


def test_a_zip_is_uploaded_and_a_bad_source_is_an_error(cli, capsys, tmp_path):
    make_dataset(tmp_path / "src" / "mine", train=4, val=2, size=64, seed=2)
    archive = shutil.make_archive(str(tmp_path / "mine"), "zip", tmp_path / "src")
    assert cli(["dataset", "register", archive]) == 0
    assert "(mine): valid" in capsys.readouterr().out
    assert cli(["dataset", "register", "../outside"]) == 1
    assert "HTTP 4" in capsys.readouterr().err
    assert cli(["dataset", "show", "f" * 32]) == 1
    assert "HTTP 404" in capsys.readouterr().err
