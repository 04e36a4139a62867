import zipfile

import pytest
import yaml

from shared.db import session_scope
from shared.errors import InvalidSpec
from shared.references import resolve_dataset, resolve_model


def write_yaml(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))


def test_dataset_resolves_to_absolute_splits(embedded, tiny_dataset):
    ref = resolve_dataset(embedded, tiny_dataset)
    assert ref.names == ["square", "disc", "bar"]
    assert set(ref.splits) == {"train", "val"}
    data = ref.ultralytics_yaml()
    assert data["path"] == str(embedded.datasets_root / "tiny") and data["nc"] == 3
    assert data["train"].endswith("tiny/images/train")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "has no data.yaml"),
        ({"train": "images/train", "val": "images/val"}, "no 'names'"),
        ({"names": ["a"], "nc": 2, "train": "images/train", "val": "images/val"}, "nc=2 but lists 1"),
        ({"names": {0: "a", 2: "b"}, "train": "images/train", "val": "images/val"}, "without gaps"),
        ({"names": ["a"], "val": "images/val"}, "no 'train' split"),
        ({"names": ["a"], "train": "images/missing", "val": "images/val"}, "does not exist"),
        ({"names": ["a"], "train": "/etc", "val": "images/val"}, "outside the datasets root"),
        ({"names": ["a"], "path": "../..", "train": "x", "val": "y"}, "outside the datasets root"),
        ("not: [valid", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_bad_datasets_are_refused(embedded, content, needle):
    folder = embedded.datasets_root / "bad"
    (folder / "images" / "train").mkdir(parents=True)
    (folder / "images" / "val").mkdir(parents=True)
    if isinstance(content, dict):
        write_yaml(folder / "data.yaml", content)
    elif isinstance(content, str):
        (folder / "data.yaml").write_text(content)
    with pytest.raises(InvalidSpec, match=needle) as info:
        resolve_dataset(embedded, "bad")
    assert info.value.field == "dataset"


@pytest.mark.parametrize("name", ["../etc", "/etc", "nope"])
def test_dataset_outside_or_missing(embedded, name):
    with pytest.raises(InvalidSpec):
        resolve_dataset(embedded, name)


def test_model_references(embedded):
    with session_scope() as session:
        assert resolve_model(embedded, session, "yolov8n.yaml").is_weights is False
        assert resolve_model(embedded, session, "yolo11s.yaml").source == "yolo11s.yaml"
        with pytest.raises(InvalidSpec, match="not an Ultralytics model config"):
            resolve_model(embedded, session, "resnet999.yaml")
        with pytest.raises(InvalidSpec, match="never downloads weights"):
            resolve_model(embedded, session, "yolov8n.pt")
        (embedded.weights_root / "fake.pt").write_text("not a checkpoint")
        with pytest.raises(InvalidSpec, match="not a PyTorch checkpoint"):
            resolve_model(embedded, session, "fake.pt")
        with zipfile.ZipFile(embedded.weights_root / "real.pt", "w") as archive:
            archive.writestr("real/data.pkl", b"x")
        ref = resolve_model(embedded, session, "real.pt")
        assert ref.is_weights and ref.source == str(embedded.weights_root / "real.pt")
        with pytest.raises(InvalidSpec, match="outside its root|must not contain"):
            resolve_model(embedded, session, "../weights/real.pt")
        with pytest.raises(InvalidSpec, match="no job"):
            resolve_model(embedded, session, "job:" + "0" * 32)
        with pytest.raises(InvalidSpec, match="must be a model yaml"):
            resolve_model(embedded, session, "resnet50")


def test_registered_dataset_resolves_for_its_owner_and_the_worker(embedded, tiny_dataset):
    from shared.auth import SYSTEM, Principal
    from shared.datasets.registry import register_folder

    alice, bob = Principal("alice"), Principal("bob")
    with session_scope() as session:
        record, _ = register_folder(session, embedded, alice, tiny_dataset)
        name = f"dataset:{record.id}"
        for principal in (alice, SYSTEM):  # SYSTEM: what the worker passes at run time
            ref = resolve_dataset(embedded, name, session=session, principal=principal)
            assert ref.names == ["square", "disc", "bar"] and ref.root == embedded.datasets_root / "tiny"
        with pytest.raises(InvalidSpec, match="not found"):
            resolve_dataset(embedded, name, session=session, principal=bob)
        with pytest.raises(InvalidSpec, match="database session"):
            resolve_dataset(embedded, name)
        record.valid = False
        session.flush()
        with pytest.raises(InvalidSpec, match="did not pass validation"):
            resolve_dataset(embedded, name, session=session, principal=alice)
