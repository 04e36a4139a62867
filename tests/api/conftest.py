import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def client(embedded):
    from api.main import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture
def pipeline(tiny_dataset):
    return {
        "name": "tiny",
        "tags": ["test"],
        "dataset": tiny_dataset,
        "model": "yolov8n.yaml",
        "stages": [{"type": "train", "epochs": 1, "imgsz": 64, "batch": 4}, {"type": "evaluate", "imgsz": 64}],
    }
