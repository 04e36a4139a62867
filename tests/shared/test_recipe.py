"""The automatic recipe: which options a train stage gets from its data, and that named options win."""

from __future__ import annotations

from shared.datasets.profile import build_profile
from shared.datasets.validate import LabeledImage
from shared.recipe import apply_choices, automatic_choices, rare_classes
from shared.schemas.pipeline import TrainStage

NAMES = ["blob", "stem", "rare"]


def image(boxes: list[tuple[int, float, float]], size: int = 320) -> LabeledImage:
    """Boxes as (class, width px, height px) at the centre of a square image."""
    return LabeledImage(
        split="train",
        path="x.png",
        width=size,
        height=size,
        boxes=[(c, 0.5, 0.5, w / size, h / size) for c, w, h in boxes],
    )


def profile(thin: bool, rare: bool) -> dict:
    """Blobs 30 x 30 and stems (1.2 x 20 px when thin, within the blob's height: no blob is crossed)."""
    stem = (1, 1.2, 20.0) if thin else (1, 30.0, 40.0)
    images = [image([(0, 30.0, 30.0), stem]) for _ in range(50)]
    images += [image([(2, 25.0, 25.0)]) for _ in range(3 if rare else 50)]
    return build_profile(NAMES, images)


def options_of(choices) -> dict:
    return {choice.option: choice.to_dict()["value"] for choice in choices}


def test_a_dataset_with_neither_thin_nor_rare_classes_gets_nothing() -> None:
    assert automatic_choices(TrainStage(type="train"), profile(thin=False, rare=False), imgsz=320) == []


def test_thin_classes_get_the_thin_recipe_for_those_classes_with_the_reason() -> None:
    choices = automatic_choices(TrainStage(type="train"), profile(thin=True, rare=False), imgsz=320)
    chosen = options_of(choices)
    assert set(chosen) == {"thin_boxes", "widen_thin"}  # widened, the stem is no longer thin: no thin assigner
    assert chosen["widen_thin"] == {
        "target_px": 8.0,
        "classes": ["stem"],
        "yield_anchors": False,
        "box_weight": 1.0,
        "box_iou": "widened",
        "levels": "all",
        "topk": None,
        "coarse_classes": None,
        "box_gradient": "all",
    }
    assert all("stem (1.1" in choice.reason and "imgsz 320" in choice.reason for choice in choices), choices


def test_a_thin_class_left_narrow_gets_the_thin_assigner() -> None:
    spec = TrainStage(type="train", widen_thin=None)
    chosen = options_of(automatic_choices(spec, profile(thin=True, rare=False), imgsz=320))
    assert set(chosen) == {"thin_boxes", "thin_assigner"}


def test_rare_classes_get_weights_and_sampling_with_the_counts_in_the_reason() -> None:
    choices = automatic_choices(TrainStage(type="train"), profile(thin=False, rare=True), imgsz=320)
    chosen = options_of(choices)
    assert chosen == {
        "class_weights": {"strategy": "sqrt_inverse", "beta": 0.999, "min_weight": 1.0},
        "sampling": {"weights": "sqrt_inverse", "ramp_epochs": 0},
    }  # 3 against 50 is rare, not rare enough (60x) for copy-paste
    assert "rare (3)" in choices[0].reason and "blob (50" in choices[0].reason
    rare, top = rare_classes(profile(thin=False, rare=True))
    assert [entry["name"] for entry in rare] == ["rare"] and top["name"] == "blob"


def test_the_rarest_classes_also_get_copy_paste() -> None:
    images = [image([(0, 30.0, 30.0), (1, 30.0, 30.0)]) for _ in range(120)] + [image([(2, 25.0, 25.0)])]
    choices = automatic_choices(TrainStage(type="train"), build_profile(NAMES, images), imgsz=320)
    chosen = options_of(choices)
    assert chosen["copy_paste_rare"] == {"classes": ["rare"], "p": 0.5, "max_pastes": 3, "max_overlap": 0.1}
    paste = next(choice for choice in choices if choice.option == "copy_paste_rare")
    assert "60x or more below" in paste.reason and "rare (1)" in paste.reason
    named = TrainStage(type="train", copy_paste_rare=None)
    assert "copy_paste_rare" not in options_of(automatic_choices(named, build_profile(NAMES, images), imgsz=320))


def test_named_options_even_null_are_kept_and_auto_recipe_false_turns_everything_off() -> None:
    both = profile(thin=True, rare=True)
    spec = TrainStage(type="train", thin_assigner=None, class_weights={"rare": 3.0}, widen_thin={"target_px": 5})
    chosen = options_of(automatic_choices(spec, both, imgsz=320))
    assert set(chosen) == {"thin_boxes", "sampling"}
    resolved = apply_choices(spec, automatic_choices(spec, both, imgsz=320))
    assert resolved.thin_assigner is None and resolved.class_weights == {"rare": 3.0}
    assert resolved.widen_thin.target_px == 5 and resolved.sampling is not None
    assert spec.sampling is None  # the stage's own spec is not changed
    assert automatic_choices(TrainStage(type="train", auto_recipe=False), both, imgsz=320) == []


def test_a_class_thin_only_at_a_small_imgsz_is_thin_there() -> None:
    images = [image([(0, 30.0, 30.0), (1, 12.0, 200.0), (2, 30.0, 30.0)], size=1280) for _ in range(20)]
    data = build_profile(NAMES, images)
    at_full_size = options_of(automatic_choices(TrainStage(type="train"), data, imgsz=1280))
    assert set(at_full_size) == {"thin_boxes", "thin_assigner"}  # aspect ratio 17, but 12 px wide: nothing to widen
    assert options_of(automatic_choices(TrainStage(type="train"), data, imgsz=256))["widen_thin"]["classes"] == ["stem"]


def test_a_stored_stage_spec_keeps_what_was_named_as_null() -> None:
    from pydantic import TypeAdapter

    from shared.schemas.pipeline import StageSpec

    spec = TrainStage(type="train", epochs=3, thin_assigner=None, widen_thin=None)
    stored = spec.stored()
    assert stored["thin_assigner"] is None and stored["widen_thin"] is None and "class_weights" not in stored
    again = TypeAdapter(StageSpec).validate_python(stored)  # what the worker reads back
    assert again.named_options() == {"thin_assigner", "widen_thin", "auto_recipe", "starvation_batches"}
    assert {c.option for c in automatic_choices(again, profile(thin=True, rare=False), 320)} == {"thin_boxes"}


def crossing_profile(crossed_images: int) -> dict:
    """50 images with a 30 x 30 blob and a thin stem: in ``crossed_images`` of them the stem (1.2 x 40 px) runs
    through the blob's whole height, in the others it is 20 px tall and stays inside it."""
    images = [image([(0, 30.0, 30.0), (1, 1.2, 40.0 if i < crossed_images else 20.0)]) for i in range(50)]
    return build_profile(NAMES, images)


def test_a_class_the_widened_boxes_cross_learns_on_the_coarser_levels_with_the_reason() -> None:
    crossed = crossing_profile(40)
    assert crossed["classes"][0]["crossed_by"] == {"stem": 0.8}
    choices = automatic_choices(TrainStage(type="train"), crossed, imgsz=320)
    widen = options_of(choices)["widen_thin"]
    assert widen["classes"] == ["stem"] and widen["levels"] == "finest" and widen["coarse_classes"] == ["blob"]
    reason = next(choice.reason for choice in choices if choice.option == "widen_thin")
    assert "blob (80% of its boxes crossed by stem)" in reason and "coarser levels" in reason


def test_a_class_crossed_rarely_keeps_every_level() -> None:
    choices = automatic_choices(TrainStage(type="train"), crossing_profile(10), imgsz=320)
    widen = options_of(choices)["widen_thin"]
    assert widen["levels"] == "all" and widen["coarse_classes"] is None
    assert "cross" not in next(choice.reason for choice in choices if choice.option == "widen_thin")


def test_a_named_widen_thin_gets_no_coarse_classes_from_the_recipe() -> None:
    stage = TrainStage(type="train", widen_thin={"target_px": 6.0})
    assert "widen_thin" not in options_of(automatic_choices(stage, crossing_profile(40), imgsz=320))
