import pytest


@pytest.fixture
def pipeline(tiny_dataset):
    return {
        "name": "tiny",
        "tags": ["test"],
        "dataset": tiny_dataset,
        "model": "yolov8n.yaml",
        "stages": [{"type": "train", "epochs": 1, "imgsz": 64, "batch": 4}, {"type": "evaluate", "imgsz": 64}],
    }
