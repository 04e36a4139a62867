"""The automatic recipe on ../shared/omr-bench's training labels chooses exactly the configuration its 20-epoch
benchmark measured (docs/benchmarks.md, session 7): stems and barlines widened on the finest level, beams (46% of
them crossed by a stem) on the coarser levels, floored class weights, weighted sampling, the three rarest barline
classes pasted, no thin-aware assigner beside widening."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from shared.datasets.profile import build_profile
from shared.datasets.validate import LabeledImage
from shared.recipe import automatic_choices
from shared.schemas.pipeline import TrainStage

REPO = Path(__file__).resolve().parents[2]
CANDIDATES = [Path(os.environ["OMR_BENCH"])] if os.environ.get("OMR_BENCH") else []
CANDIDATES += [p / "shared" / "omr-bench" for p in (REPO.parent, REPO.parent.parent)]


@pytest.fixture(scope="module")
def omr_profile() -> dict:
    root = next((p for p in CANDIDATES if (p / "data.yaml").is_file()), None)
    if root is None:
        pytest.skip("omr-bench is not beside this checkout (../shared/omr-bench) and OMR_BENCH is not set")
    names_map = yaml.safe_load((root / "data.yaml").read_text())["names"]
    names = [names_map[i] for i in range(len(names_map))] if isinstance(names_map, dict) else list(names_map)
    images = []
    for label in sorted((root / "labels" / "train").glob("*.txt")):
        rows = [line.split() for line in label.read_text().splitlines() if line.strip()]
        boxes = [(int(r[0]), *map(float, r[1:5])) for r in rows]
        images.append(LabeledImage(split="train", path=str(label), width=320, height=320, boxes=boxes))
    return build_profile(names, images)


def test_the_default_train_stage_resolves_to_the_measured_configuration(omr_profile) -> None:
    chosen = {c.option: c.to_dict()["value"] for c in automatic_choices(TrainStage(type="train"), omr_profile, 320)}
    assert set(chosen) == {"thin_boxes", "widen_thin", "class_weights", "sampling", "copy_paste_rare"}
    widen = chosen["widen_thin"]
    assert widen["classes"] == ["stem", "barline"]
    assert widen["levels"] == "finest" and widen["coarse_classes"] == ["beam"]
    assert (widen["box_weight"], widen["box_iou"], widen["topk"], widen["box_gradient"]) == (1.0, "widened", None, "all")
    assert chosen["class_weights"]["min_weight"] == 1.0 and chosen["sampling"]["weights"] == "sqrt_inverse"
    assert chosen["copy_paste_rare"]["classes"] == ["barline_double", "barline_final", "barline_repeat"]
    beam = next(entry for entry in omr_profile["classes"] if entry["name"] == "beam")
    assert beam["crossed_by"]["stem"] == pytest.approx(0.4575, abs=1e-4)
