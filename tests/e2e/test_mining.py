"""train -> mine -> train on the mined dataset -> evaluate, through the real embedded stack."""

import json

import pytest
import yaml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(stack_factory):
    return stack_factory("mining")


TRAIN = {"type": "train", "epochs": 2, "imgsz": 64, "batch": 4, "workers": 0, "seed": 0}


def test_train_mine_train_from_stage(stack):
    pipeline = {
        "name": "mining",
        "dataset": "tiny",
        "model": "yolov8n.yaml",
        "stages": [
            TRAIN,
            {"type": "mine", "split": "train", "imgsz": 64, "batch": 4, "max_images": 5, "replay": 0.3, "preview": 3},
            {**TRAIN, "epochs": 1, "data": "from_stage"},
            {"type": "evaluate", "imgsz": 64, "batch": 4},
        ],
    }
    job = stack.run_to_success(pipeline, timeout_s=600)
    train, mine, retrain, evaluate = job["stages"]
    results = mine["results"]
    assert results["mined_weights"].endswith(f"{train['dir']}/weights/best.pt")
    assert results["images"] == 5
    assert 1 <= results["hard_images"] <= 5
    ground_truth = sum(c["ground_truth"] for c in results["per_class"])
    assert ground_truth > 0 and sum(results["kinds"][k] for k in ("matched", "false_negative")) <= ground_truth

    mine_dir = stack.home / "artifacts" / mine["dir"]
    stats = json.loads((mine_dir / "stats.json").read_text())
    assert stats["thresholds"]["conf"] == 0.5 and stats["hard_images"] == results["hard_images"]
    assert mine["info"]["mining"]["dataset"] == results["dataset"] and "warning" not in mine["info"]["mining"]
    assert set(stats["error_breakdown"]["overall"]) == {
        "classification",
        "localization",
        "both",
        "duplicate",
        "background",
        "missed",
    }
    detailed = json.loads((mine_dir / "detailed.json").read_text())
    assert len(detailed) == 5 and all(
        {"box", "kind", "difficulty", "iou"} <= set(o) for d in detailed for o in d["objects"]
    )
    assert [d["difficulty"] for d in detailed] == sorted((d["difficulty"] for d in detailed), reverse=True)
    for name in ("square", "disc", "bar"):
        assert (mine_dir / f"hard_examples_{name}.txt").is_file()
    previews = sorted((mine_dir / "preview").glob("*.jpg"))
    assert len(previews) == min(3, results["hard_images"])

    # the hard-example dataset: hard images + a replay share of ordinary ones, and Ultralytics reads it
    counts = results["dataset"]
    assert counts["hard"] == results["hard_images"]
    assert counts["replay"] == min(3, round((counts["hard"] + counts["hard_negative"]) * 0.3 / 0.7))
    data_yaml = mine_dir / "dataset" / "data.yaml"
    data = yaml.safe_load(data_yaml.read_text())
    assert data["names"] == {0: "square", 1: "disc", 2: "bar"}
    assert data["val"].endswith("images/val")
    from ultralytics.data.utils import check_det_dataset

    checked = check_det_dataset(str(data_yaml))
    images = sorted((mine_dir / "dataset" / "images" / "train").iterdir())
    assert len(images) == counts["total"] and checked["nc"] == 3
    assert all((mine_dir / "dataset" / "labels" / "train" / f"{p.stem}.txt").is_file() for p in images)

    retrain_data = yaml.safe_load((stack.home / "artifacts" / retrain["dir"] / "data.yaml").read_text())
    assert retrain_data["path"] == str((mine_dir / "dataset").resolve())
    assert retrain["results"]["start_weights"].endswith(f"{train['dir']}/weights/best.pt")
    assert evaluate["results"]["evaluated_weights"].endswith(f"{retrain['dir']}/weights/best.pt")
    assert set(evaluate["results"]["error_breakdown"]["overall"]) == set(stats["error_breakdown"]["overall"])

    with stack.client() as client:
        summary = client.get(f"/v1/jobs/{job['id']}/stages/1/hard-examples", params={"top": 2})
        assert summary.status_code == 200, summary.text
        body = summary.json()
        assert body["hard_images"] == results["hard_images"] and len(body["top"]) == min(2, results["hard_images"])
        assert [c["name"] for c in body["per_class"]] == ["square", "disc", "bar"]
        preview = client.get(body["top"][0]["preview_url"])
        assert preview.status_code == 200 and preview.content[:3] == b"\xff\xd8\xff"
        assert client.get(body["stats_url"]).json()["images"] == 5
        not_mine = client.get(f"/v1/jobs/{job['id']}/stages/0/hard-examples")
        assert not_mine.status_code == 409 and "not a mine stage" in not_mine.json()["error"]["message"]
        assert client.get(f"/v1/jobs/{job['id']}/stages/9/hard-examples").status_code == 404
        assert client.get(f"/v1/jobs/{'f' * 32}/stages/1/hard-examples").status_code == 404
