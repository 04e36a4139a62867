"""The dataset validator finds each kind of problem and names its file and line."""

from pathlib import Path

import pytest
from PIL import Image

from client.synthetic import make_dataset
from shared.datasets.validate import label_path_for, parse_label_text, validate_dataset


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("0 0.5 0.5 0.1", "label_fields"),
        ("0 0.5 0.5 0.1 0.1 0.3", "label_fields"),
        ("0 0.5 abc 0.1 0.1", "label_not_numeric"),
        ("0 0.5 nan 0.1 0.1", "label_not_numeric"),
        ("3 0.5 0.5 0.1 0.1", "class_out_of_range"),
        ("-1 0.5 0.5 0.1 0.1", "class_out_of_range"),
        ("1.5 0.5 0.5 0.1 0.1", "class_out_of_range"),
        ("0 1.2 0.5 0.1 0.1", "coordinate_out_of_range"),
        ("0 0.5 0.5 -0.1 0.1", "coordinate_out_of_range"),
        ("0 0.5 0.5 0.0 0.1", "zero_size_box"),
        ("0 0.2 0.2 0.2 0.2 0.2 0.4", "zero_size_box"),
    ],
)
def test_each_bad_label_line_is_reported(line, code):
    boxes, problems = parse_label_text(f"1 0.5 0.5 0.2 0.2\n\n{line}\n", nc=3)
    assert boxes == [(1, 0.5, 0.5, 0.2, 0.2)]
    assert [(p[0], p[1], p[2]) for p in problems] == [(3, "error", code)]


def test_polygons_become_boxes_and_duplicates_are_warned():
    boxes, problems = parse_label_text("2 0.1 0.2 0.3 0.2 0.3 0.6\n2 0.1 0.2 0.3 0.2 0.3 0.6\n", nc=3)
    assert boxes == [(2, pytest.approx(0.2), pytest.approx(0.4), pytest.approx(0.2), pytest.approx(0.4))]
    assert problems == [(2, "warning", "duplicate_label", "same label line as an earlier line")]


def test_label_path_follows_ultralytics():
    assert label_path_for(Path("/d/images/train/a.b.png")) == Path("/d/labels/train/a.b.txt")
    assert label_path_for(Path("/images/d/images/x.jpg")) == Path("/images/d/labels/x.txt")


@pytest.fixture
def dataset(tmp_path) -> Path:
    make_dataset(tmp_path / "ds", train=4, val=2, test=1, size=64, seed=5)
    return tmp_path / "ds"


def issues(report) -> set[tuple[str, str, str | None, int | None]]:
    return {(i.severity, i.code, i.file, i.line) for i in report.issues}


def test_a_clean_dataset_is_valid(dataset):
    report = validate_dataset(dataset, dataset.parent)
    assert report.valid and report.issues == [] and report.split_images == {"train": 4, "val": 2, "test": 1}
    assert len(report.images) == 7 and all(i.width == i.height == 64 for i in report.images)
    assert report.to_dict()["labels"] == sum(len(i.boxes) for i in report.images) > 0


def test_every_kind_of_problem_is_found(dataset):
    (dataset / "labels/train/train_0000.txt").write_text("0 0.5 0.5 0.1 0.1\n0 0.5 x 0.1 0.1\n")
    (dataset / "labels/train/orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (dataset / "images/train/train_0001.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    png = (dataset / "images/train/train_0002.png").read_bytes()
    (dataset / "images/train/train_0003.png").write_bytes(png[: len(png) // 2])  # truncated
    (dataset / "images/val/copy.png").write_bytes(png)  # the same bytes in val
    Image.new("RGB", (40, 30)).save(dataset / "images/val/photo.jpg")
    jpeg = (dataset / "images/val/photo.jpg").read_bytes()
    (dataset / "images/val/photo.jpg").write_bytes(jpeg[:-2])  # no end-of-image marker
    for image in (dataset / "images/test").iterdir():
        image.unlink()
    report = validate_dataset(dataset, dataset.parent)
    assert not report.valid
    found = issues(report)
    assert ("error", "label_not_numeric", "labels/train/train_0000.txt", 2) in found
    assert ("error", "label_without_image", "labels/train/orphan.txt", None) in found
    assert ("error", "image_unreadable", "images/train/train_0001.png", None) in found
    assert ("error", "image_unreadable", "images/train/train_0003.png", None) in found
    assert ("warning", "duplicate_file", "images/val/copy.png", None) in found
    assert ("error", "image_unreadable", "images/val/photo.jpg", None) in found
    assert ("warning", "empty_split", "data.yaml", None) in found  # test split: a warning
    truncated = next(i for i in report.issues if i.file == "images/val/photo.jpg")
    assert "truncated JPEG" in truncated.message
    duplicate = next(i for i in report.issues if i.code == "duplicate_file")
    assert duplicate.message == "same content as images/train/train_0002.png"
    summary = report.to_dict()
    assert summary["valid"] is False and summary["counts"]["image_unreadable"] == 3


@pytest.mark.parametrize(
    ("data_yaml", "code", "text"),
    [
        (None, "missing_data_yaml", "no data.yaml"),
        ("train: images/train\nval: images/val\nnames: [a, b]\nnc: 3\n", "bad_data_yaml", "nc=3 but lists 2"),
        ("train: images/train\nval: images/val\n", "bad_data_yaml", "no 'names'"),
        ("train: images/train\nnames: [a]\n", "bad_data_yaml", "no 'val' split"),
        ("train: images/train\nval: ../../etc\nnames: [a]\n", "bad_data_yaml", "outside"),
        ("train: [unclosed\n", "bad_data_yaml", "not valid YAML"),
    ],
)
def test_data_yaml_problems(dataset, data_yaml, code, text):
    if data_yaml is None:
        (dataset / "data.yaml").unlink()
    else:
        (dataset / "data.yaml").write_text(data_yaml)
    report = validate_dataset(dataset, dataset.parent)
    assert not report.valid and [i.code for i in report.issues] == [code]
    assert text in report.issues[0].message


def test_wrong_class_count_in_labels(dataset):
    (dataset / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [square]\n")
    report = validate_dataset(dataset, dataset.parent)
    assert {i.code for i in report.issues} == {"class_out_of_range"}


def test_empty_train_split_is_an_error(dataset):
    for image in (dataset / "images/train").iterdir():
        image.unlink()
    report = validate_dataset(dataset, dataset.parent)
    assert ("error", "empty_split", "data.yaml", None) in issues(report)


def test_too_many_images_to_validate_in_a_request(dataset):
    from shared.errors import InvalidSpec

    with pytest.raises(InvalidSpec, match="holds 7 images"):
        validate_dataset(dataset, dataset.parent, max_images=5)


def test_image_list_file_and_yaml_without_path(tmp_path):
    root = tmp_path / "lists"
    make_dataset(root, train=2, val=1, size=32)
    (root / "train.txt").write_text("./images/train/train_0000.png\n./images/train/train_0001.png\n")
    (root / "data.yaml").write_text("train: train.txt\nval: images/val\nnames: [a, b, c]\n")
    report = validate_dataset(root, tmp_path)
    assert report.valid and report.split_images == {"train": 2, "val": 1}


def test_cli_dataset_check(tmp_path, capsys):
    from client.cli import main

    dataset = tmp_path / "big"
    make_dataset(dataset, train=6, val=2, size=160, seed=0)  # bars 2-4 px wide, 40-80 px tall
    assert main(["dataset", "check", str(dataset), "--imgsz", "320"]) == 0
    out = capsys.readouterr().out
    assert "valid; images {'train': 6, 'val': 2}" in out and "classes at risk:\n  bar (" in out and "@320" in out
    assert "thin_assigner: {}" in out
    (dataset / "labels/train/train_0000.txt").write_text("9 0.5 0.5 0.1 0.1\n")
    assert main(["dataset", "check", str(dataset)]) == 1
    assert "class_out_of_range" in capsys.readouterr().out


def test_a_yaml_file_names_the_dataset_too(dataset):
    (dataset / "data.yaml").rename(dataset / "other.yaml")
    report = validate_dataset(dataset / "other.yaml", dataset.parent)
    assert report.valid and report.split_images == {"train": 4, "val": 2, "test": 1}
