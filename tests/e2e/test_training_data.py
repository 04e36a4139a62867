"""A train stage with weighted sampling and rare-class copy-paste through the API and a real worker: what
was used and what augmentation did is shown on the stage, and the copy-paste examples are artifacts."""

import pytest

from tests.e2e.checks import tiny_pipeline, train_only_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(stack_factory):
    return stack_factory("data-options")


def test_sampling_and_copy_paste_stage_shows_what_it_used_and_its_examples(stack):
    pipeline = train_only_pipeline(
        epochs=1,
        sampling={"weights": {"bar": 5}, "ramp_epochs": 2},
        copy_paste_rare={"classes": ["bar"], "p": 1.0, "max_pastes": 2},
    )
    job = stack.run_to_success(pipeline)
    info = job["stages"][0]["info"]
    assert info["sampling"]["class_weights"] == {"square": 1.0, "disc": 1.0, "bar": 5.0}
    assert info["sampling"]["ramp_epochs"] == 2
    assert set(info["boxes_removed_by_augmentation"]) == {"square", "disc", "bar"}
    examples = info["copy_paste_rare"]["examples"]
    assert examples and info["copy_paste_rare"]["pasted_first_epoch"]["bar"] >= 8
    with stack.client() as client:
        listing = client.get(f"/v1/jobs/{job['id']}/artifacts").json()
    paths = {item["path"] for item in listing["items"]}
    assert {f"01-train/{example}" for example in examples} <= paths


def test_unknown_copy_paste_class_is_refused_at_submit(stack):
    with stack.client() as client:
        response = client.post("/v1/jobs", json=tiny_pipeline(copy_paste_rare={"classes": ["clef"]}))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "clef" in error["message"] and error["field"].endswith("copy_paste_rare.classes.0")
