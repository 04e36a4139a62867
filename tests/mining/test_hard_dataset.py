"""The hard-example dataset: who goes in, the replay share, labels, and data.yaml."""

from pathlib import Path

import yaml

from shared.datasets.files import label_path_for as label_path
from shared.datasets.files import split_images
from worker.mining.hard_dataset import build_hard_dataset, replay_count
from worker.mining.report import MinedImage


def test_replay_count_makes_the_requested_share():
    assert replay_count(8, 0.2, 100) == 2  # 2 of 10 images are ordinary
    assert replay_count(9, 0.5, 100) == 9
    assert replay_count(9, 0.5, 4) == 4  # no more than there are
    assert replay_count(0, 0.5, 100) == 0 and replay_count(5, 0.0, 100) == 0


def test_label_path_follows_ultralytics():
    assert label_path(Path("/d/images/train/a.png")) == Path("/d/labels/train/a.txt")
    assert label_path(Path("/images/x/images/val/b.c.jpg")) == Path("/images/x/labels/val/b.c.txt")


def make_split(root: Path, split: str, names: list[str], labelled: bool = True) -> list[Path]:
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        image = root / "images" / split / name
        image.write_bytes(b"not really a png")
        if labelled:
            (root / "labels" / split / f"{image.stem}.txt").write_text(f"0 0.5 0.5 0.1 0.1  # {name}\n")
        paths.append(image)
    return paths


def mined(path: Path, difficulty: float = 2.0) -> MinedImage:
    return MinedImage(im_file=str(path), shape=(64, 64), difficulty=difficulty, objects=[])


def test_hard_negatives_and_replay(tmp_path):
    data = tmp_path / "data"
    train = make_split(data, "train", [f"t{i}.png" for i in range(10)])
    other = make_split(data / "more", "train", ["t0.png"])  # same file name from another folder
    background = make_split(data, "extra", ["bg.png"], labelled=False)
    val = make_split(data, "val", ["v.png"])
    assert split_images([data / "images" / "train"]) == train
    out = tmp_path / "artifacts" / "dataset"
    counts = build_hard_dataset(
        out,
        hard=[mined(train[0]), mined(other[0])],
        hard_negative_images=[mined(train[0]), mined(background[0], 1.0)],
        train_images=train,
        replay=0.25,
        names=["a", "b"],
        val=[data / "images" / "val"],
    )
    assert counts == {"hard": 2, "hard_negative": 1, "replay": 1, "total": 4}
    images = sorted(p.name for p in (out / "images" / "train").iterdir())
    assert len(images) == 4 and "t0.png" in images and "t0_1.png" in images and "bg.png" in images
    assert (out / "labels" / "train" / "bg.txt").read_text() == ""  # a pure background image
    assert (out / "labels" / "train" / "t0_1.txt").read_text() == (
        other[0].parents[2] / "labels/train/t0.txt"
    ).read_text()
    data_yaml = yaml.safe_load((out / "data.yaml").read_text())
    assert data_yaml["names"] == {0: "a", 1: "b"} and data_yaml["val"] == str(data / "images" / "val")
    assert data_yaml["train"] == "images/train" and data_yaml["path"] == str(out.resolve())
    assert all(not (out / "images" / "train" / name).is_symlink() for name in images)
    assert val  # the original val split is referenced, not copied
    assert not (out / "images" / "val").exists()
