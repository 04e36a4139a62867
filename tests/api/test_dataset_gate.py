"""Every dataset reference passes the validator before anything is queued (issue 14, bad input): a folder
named by path with any of the problems Ultralytics would drop silently is a 422 naming the file and line;
files reached outside the dataset folder are refused; an unchanged dataset is not read again."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from client.synthetic import make_dataset
from shared.datasets import check

LABEL = "labels/train/train_0000.txt"
IMAGE = "images/train/train_0000.png"


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb by its header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _label(text: str):
    def damage(root: Path) -> None:
        (root / LABEL).write_text(text)

    return damage


def _image(data: bytes):
    def damage(root: Path) -> None:
        (root / IMAGE).write_bytes(data)

    return damage


def _orphan(root: Path) -> None:
    (root / "labels/train/no_image.txt").write_text("0 0.5 0.5 0.1 0.1\n")


def _list_outside(root: Path) -> None:
    outside = root.parent.parent / "outside.png"  # beside the datasets root
    Image.new("RGB", (32, 32)).save(outside)
    (root / "train.txt").write_text(f"{outside}\n")
    (root / "data.yaml").write_text("train: train.txt\nval: images/val\nnames: [square, disc, bar]\n")


def _val_in_sibling(root: Path) -> None:
    make_dataset(root.parent / "sibling", train=1, val=2, size=64, seed=5)
    (root / "data.yaml").write_text("train: images/train\nval: ../sibling/images/val\nnames: [square, disc, bar]\n")


def _label_link(root: Path) -> None:
    (root / LABEL).unlink()
    os.symlink("/etc/passwd", root / LABEL)


def _image_link(root: Path) -> None:
    outside = root.parent.parent / "elsewhere.png"
    Image.new("RGB", (32, 32)).save(outside)
    (root / IMAGE).unlink()
    os.symlink(outside, root / IMAGE)


CASES = {
    "4 fields": (_label("0 0.5 0.5 0.1\n"), "label_fields", LABEL, 1),
    "6 fields": (_label("0 0.5 0.5 0.1 0.1 0.3\n"), "label_fields", LABEL, 1),
    "text": (_label("0 0.5 0.5 0.1 0.1\nbarline here 0 0 0\n"), "label_not_numeric", LABEL, 2),
    "nan": (_label("0 nan 0.5 0.1 0.1\n"), "label_not_numeric", LABEL, 1),
    "inf": (_label("0 0.5 inf 0.1 0.1\n"), "label_not_numeric", LABEL, 1),
    "class -1": (_label("-1 0.5 0.5 0.1 0.1\n"), "class_out_of_range", LABEL, 1),
    "class >= nc": (_label("3 0.5 0.5 0.1 0.1\n"), "class_out_of_range", LABEL, 1),
    "outside 0-1": (_label("0 1.5 0.5 0.1 0.1\n"), "coordinate_out_of_range", LABEL, 1),
    "zero width": (_label("0 0.5 0.5 0 0.1\n"), "zero_size_box", LABEL, 1),
    "label without image": (_orphan, "label_without_image", "labels/train/no_image.txt", None),
    "truncated image": (_image(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image_unreadable", IMAGE, None),
    "empty image": (_image(b""), "image_unreadable", IMAGE, None),
    "text as png": (_image(b"this is not a picture"), "image_unreadable", IMAGE, None),
    "bomb": (_image(png_declaring(100_000, 100_000)), "image_unreadable", IMAGE, None),
    "list outside root": (_list_outside, "outside_dataset", None, None),
    "label link outside": (_label_link, "outside_dataset", LABEL, None),
    "image link outside": (_image_link, "outside_dataset", IMAGE, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_job_on_a_folder_with_a_problem_is_refused_naming_file_and_line(client, embedded, pipeline, case) -> None:
    damage, code, file, line = CASES[case]
    make_dataset(embedded.datasets_root / "bad", train=3, val=2, size=64, seed=1)
    damage(embedded.datasets_root / "bad")
    response = client.post("/v1/jobs", json={**pipeline, "dataset": "bad"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "dataset" and "did not pass validation" in error["message"]
    found = {(d["code"], d["file"], d["line"]) for d in error["details"]}
    if file is None:
        assert code in {c for c, _, _ in found}, found
    else:
        assert (code, file, line) in found, found
    assert client.get("/v1/jobs").json()["count"] == 0


def test_a_val_split_in_a_sibling_dataset_is_refused(client, embedded, pipeline) -> None:
    make_dataset(embedded.datasets_root / "bad", train=3, val=2, size=64, seed=1)
    _val_in_sibling(embedded.datasets_root / "bad")
    error = client.post("/v1/jobs", json={**pipeline, "dataset": "bad"}).json()["error"]
    assert "outside the dataset folder" in error["message"], error


def test_a_bomb_image_is_a_finding_when_registering_not_a_500(client, embedded) -> None:
    make_dataset(embedded.datasets_root / "bomb", train=3, val=2, size=64, seed=1)
    (embedded.datasets_root / "bomb" / IMAGE).write_bytes(png_declaring(100_000, 100_000))
    response = client.post("/v1/datasets", json={"path": "bomb"})
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["valid"] is False
    [finding] = [e for e in dataset["validation"]["errors"] if e["file"] == IMAGE]
    assert "too many pixels" in finding["message"]


def test_an_unchanged_dataset_is_validated_once_and_a_changed_one_again(
    client, embedded, tiny_dataset, pipeline, monkeypatch
) -> None:
    calls = []
    real = check.validate_dataset

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(check, "validate_dataset", counting)
    for _ in range(3):
        assert client.post("/v1/jobs", json=pipeline).status_code == 202
    assert len(calls) == 1
    label = next((embedded.datasets_root / tiny_dataset).glob("labels/train/*.txt"))
    label.write_text("9 0.5 0.5 0.1 0.1\n")
    response = client.post("/v1/jobs", json=pipeline)
    assert response.status_code == 422 and len(calls) == 2
    assert response.json()["error"]["details"][0]["code"] == "class_out_of_range"


def test_registering_a_folder_twice_returns_the_same_dataset_validated_again(client, embedded, tiny_dataset) -> None:
    first = client.post("/v1/datasets", json={"path": tiny_dataset})
    assert first.status_code == 201 and first.json()["valid"] is True
    label = next((embedded.datasets_root / tiny_dataset).glob("labels/train/*.txt"))
    label.write_text("0 0.5 0.5 0.1\n")
    again = client.post("/v1/datasets", json={"path": tiny_dataset})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.json()["valid"] is False
    assert client.get("/v1/datasets").json()["count"] == 1


def _zip(entries: dict[str, bytes]) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _dataset_zip(tmp_path: Path, damage=None) -> bytes:
    make_dataset(tmp_path / "src", train=3, val=2, size=64, seed=2)
    if damage is not None:
        damage(tmp_path / "src")
    return _zip({p.relative_to(tmp_path / "src").as_posix(): p.read_bytes() for p in (tmp_path / "src").rglob("*") if p.is_file()})


@pytest.mark.parametrize("kind", ["zip in a zip", "no data.yaml", "empty", "bad labels"])
def test_a_bad_zip_is_refused_with_its_report_and_nothing_is_kept(client, embedded, tmp_path, kind) -> None:
    data = {
        "zip in a zip": lambda: _zip({"inner.zip": _dataset_zip(tmp_path)}),
        "no data.yaml": lambda: _zip({"images/train/a.png": b"x", "readme.txt": b"hello"}),
        "empty": lambda: _zip({}),
        "bad labels": lambda: _dataset_zip(tmp_path, _label("0 0.5 0.5\n")),
    }[kind]()
    response = client.post("/v1/datasets", files={"file": ("d.zip", data, "application/zip")}, data={"name": "z"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "file" and "nothing was kept" in error["message"] and error["details"]
    uploads = embedded.datasets_root / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
    assert client.get("/v1/datasets").json()["count"] == 0


@pytest.mark.parametrize(
    ("model", "freeze", "field"),
    [("yolov8n.yaml", [0, 999], "stages.0.freeze.1"), ("yolov8n.yaml", 24, "stages.0.freeze"),
     ("yolov8n-p2.yaml", [29], "stages.0.freeze.0")],
)
def test_freeze_indices_the_model_does_not_have_are_refused(client, pipeline, model, freeze, field) -> None:
    stages = [{**pipeline["stages"][0], "freeze": freeze}]
    response = client.post("/v1/jobs", json={**pipeline, "model": model, "stages": stages})
    assert response.status_code == 422 and response.json()["error"]["field"] == field, response.text
    ok = [{**pipeline["stages"][0], "freeze": [0, 22] if model == "yolov8n.yaml" else [28]}]
    assert client.post("/v1/jobs", json={**pipeline, "model": model, "stages": ok}).status_code == 202
