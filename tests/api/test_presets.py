"""Presets: listed and shown over the API, expanded at submit into the stages that are stored, overrides applied,
bad names and overrides refused naming the field."""

import pytest
import yaml

from shared.presets import load_preset, preset_names, split_epochs


@pytest.fixture
def tiny_dataset(embedded) -> str:
    """With a test split: the hem preset evaluates on val and test."""
    from client.synthetic import make_dataset

    make_dataset(embedded.datasets_root / "tiny3", train=8, val=4, test=4, size=64, seed=1)
    return "tiny3"


def test_presets_are_listed_and_shown(client):
    listed = client.get("/v1/presets").json()["items"]
    assert [p["name"] for p in listed] == preset_names() == ["hem", "progressive-imgsz", "progressive-unfreeze"]
    hem = client.get("/v1/presets/hem").json()
    assert [s["type"] for s in hem["stages"]] == ["train", "mine", "train", "evaluate", "evaluate"]
    assert yaml.safe_load(hem["text"])["stages"] == hem["stages"]
    missing = client.get("/v1/presets/nope")
    assert missing.status_code == 404 and "hem" in missing.json()["error"]["message"]


def test_every_preset_expands_and_validates(client, tiny_dataset):
    for name in preset_names():
        response = client.post("/v1/jobs", json={"preset": name, "dataset": tiny_dataset})
        assert response.status_code == 202, (name, response.text)
        stages = response.json()["stages"]
        assert [s["type"] for s in stages] == [s["type"] for s in load_preset(name)["stages"]]
        assert [s["name"] for s in stages] == [s.get("name") for s in load_preset(name)["stages"]]


def test_overrides_are_applied_and_the_expansion_is_what_is_stored(client, tiny_dataset):
    body = {"preset": "hem", "dataset": tiny_dataset, "name": "mine-then-tune",
            "overrides": {"epochs": 8, "imgsz": 64, "stages": {"mine": {"replay": 0.5}, "2": {"lr0": 0.0001}}}}
    job = client.post("/v1/jobs", json=body).json()
    stages = job["stages"]
    assert [s["epochs"] for s in stages if s["type"] == "train"] == [6, 2]  # 15:5 of 8
    assert {s["spec"]["imgsz"] for s in stages} == {64}
    assert stages[1]["spec"]["replay"] == 0.5 and stages[2]["spec"]["lr0"] == 0.0001
    assert stages[2]["spec"]["data"] == "from_stage" and stages[2]["spec"]["optimizer"] == "AdamW"
    assert job["name"] == "mine-then-tune"


def test_freeze_shares_become_layer_counts_of_the_jobs_model(client, tiny_dataset):
    job = client.post("/v1/jobs", json={"preset": "progressive-unfreeze", "dataset": tiny_dataset}).json()
    # yolov8n.yaml builds 23 layers: 50% / 30% / 10% / 0
    assert [s["spec"]["freeze"] for s in job["stages"] if s["type"] == "train"] == [11, 6, 2, 0]


def test_bad_presets_and_overrides_are_refused(client, tiny_dataset):
    cases = [
        ({"preset": "nope"}, "no preset 'nope'"),
        ({"preset": "hem", "overrides": {"stages": {"tune": {"epochs": 1}}}}, "no stage of that name"),
        ({"preset": "hem", "overrides": {"stages": {"mine": {"type": "train"}}}}, "type cannot be changed"),
        ({"preset": "hem", "overrides": {"lr": 1}}, "overrides.lr: not an override"),
        ({"preset": "hem", "overrides": {"epochs": 1}}, "cannot be shared by 2 train stages"),
        ({"preset": "hem", "stages": [{"type": "train"}]}, "either stages or a preset"),
        ({"overrides": {"epochs": 3}, "stages": [{"type": "train"}]}, "only a job that names a preset"),
        ({"preset": "hem", "overrides": {"stages": {"mine": {"replay": 5}}}}, "replay"),
    ]
    for change, message in cases:
        response = client.post("/v1/jobs", json={"dataset": tiny_dataset, **change})
        assert response.status_code == 422, (change, response.text)
        assert message in response.text, (change, response.text)


def test_split_epochs_keeps_the_proportions_and_the_total():
    assert split_epochs(20, [15, 5]) == [15, 5]
    assert split_epochs(7, [5, 5, 5, 5]) == [2, 2, 2, 1]
    assert split_epochs(4, [1, 1, 1, 1]) == [1, 1, 1, 1]
    assert sum(split_epochs(101, [3, 7, 11])) == 101


def test_a_bad_preset_or_override_names_its_field(client, tiny_dataset):
    for change, field in [({"preset": "nope"}, "preset"),
                          ({"preset": "hem", "overrides": {"stages": {"tune": {}}}}, "overrides.stages.tune"),
                          ({"stages": [{"type": "train", "freeze": "150%"}]}, "stages.0.freeze")]:
        error = client.post("/v1/jobs", json={"dataset": tiny_dataset, **change}).json()["error"]
        assert error["field"] == field and error["details"][0]["field"] == field, error
