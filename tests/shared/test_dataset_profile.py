"""The dataset profile and the classes-at-risk warnings, on boxes whose numbers are worked out by hand."""

import pytest

from shared.datasets.profile import build_profile, classes_at_risk
from shared.datasets.validate import LabeledImage

IMAGES = [
    # 100 x 200 px: class a is 2 x 100 px (thin side 2 px, 0.01 of the long side, aspect 50);
    # class b is 50 x 100 px (area 0.25 of the image: oversized)
    LabeledImage("train", "a.png", 100, 200, [(0, 0.5, 0.5, 0.02, 0.5), (1, 0.5, 0.5, 0.5, 0.5)]),
    # 400 x 400 px: class a is 1.6 x 40 px (thin side 0.004 of the long side, aspect 25)
    LabeledImage("train", "b.png", 400, 400, [(0, 0.5, 0.5, 0.004, 0.1)]),
    LabeledImage("val", "c.png", 100, 100, []),
]


@pytest.fixture
def profile():
    return build_profile(["a", "b"], IMAGES)


def test_counts_per_split_and_class(profile):
    assert profile["splits"] == {
        "train": {
            "images": 2,
            "background_images": 0,
            "instances": 3,
            "instances_per_class": {"a": 2, "b": 1},
            "images_per_class": {"a": 2, "b": 1},
        },
        "val": {"images": 1, "background_images": 1, "instances": 0, "instances_per_class": {}, "images_per_class": {}},
    }
    assert profile["instances"] == 3


def test_box_sizes(profile):
    a, b = profile["classes"]
    assert (a["instances"], a["images"], b["instances"], b["images"]) == (2, 2, 1, 1)
    assert a["median_width_px"] == pytest.approx(1.8)  # (2 + 1.6) / 2
    assert a["median_height_px"] == pytest.approx(70)  # (100 + 40) / 2
    assert a["median_thin_side_px"] == pytest.approx(1.8)
    assert a["median_thin_side_of_long_side"] == pytest.approx(0.007)  # (0.01 + 0.004) / 2
    assert a["median_aspect_ratio"] == pytest.approx(37.5)  # (50 + 25) / 2
    assert (a["share_width_under_0.005"], a["share_width_under_0.01"], a["share_thin_under_0.005"]) == (0.5, 0.5, 0.5)
    assert (a["share_oversized"], b["share_oversized"]) == (0.0, 1.0)
    assert b["median_thin_side_px"] == pytest.approx(50) and b["median_aspect_ratio"] == pytest.approx(2)
    assert profile["share_width_under_0.005"] == pytest.approx(0.3333)
    assert profile["share_width_under_0.01"] == pytest.approx(0.3333)
    assert (profile["oversized_boxes"], profile["share_oversized"]) == (1, pytest.approx(0.3333))
    histogram = profile["box_size_histogram"]
    assert histogram["edges"] == [0.0, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    assert histogram["width"] == [0, 1, 0, 0, 1, 0, 0, 0, 1]  # 0.004, 0.02, 0.5
    assert histogram["height"] == [0, 0, 0, 0, 0, 0, 1, 0, 2]  # 0.1, 0.5, 0.5


def test_classes_at_risk(profile):
    assert [c["name"] for c in profile["at_risk"]] == ["a"]
    risk = profile["at_risk"][0]
    assert risk["median_thin_side_px_at_imgsz"] == {"640": pytest.approx(4.48)}  # 640 x 0.007
    assert risk["reasons"] == [
        "median thin side 1.80 px at the images' own size (< 3)",
        "median aspect ratio 37.5 (> 10)",
        "50% of boxes thinner than 0.005 of the image",
    ]
    at_320 = classes_at_risk(profile, imgsz=320)[0]
    assert at_320["median_thin_side_px_at_imgsz"] == {"320": pytest.approx(2.24), "640": pytest.approx(4.48)}
    assert "median thin side 2.24 px at imgsz 320 (< 3)" in at_320["reasons"]


def test_an_empty_dataset_profiles_to_zeros():
    profile = build_profile(["a"], [LabeledImage("train", "x.png", 10, 10, [])])
    assert profile["instances"] == 0 and profile["at_risk"] == [] and profile["classes"][0]["median_width_px"] is None


def test_crossings_are_boxes_that_run_through_another_class_box() -> None:
    """A stem through a beam's whole height crosses it (not the other way round: the crossing box is the
    thinner); a stem that starts inside the beam does not, and a box of the beam's own class never counts."""
    import numpy as np

    from shared.datasets.profile import crossings

    boxes = np.array(
        [
            [10.0, 0.0, 60.0, 10.0],  # 0: a beam, 50 x 10
            [20.0, -5.0, 21.0, 30.0],  # 1: a stem through its whole height
            [40.0, 5.0, 41.0, 30.0],  # 2: a stem that starts inside it
            [15.0, -1.0, 16.0, 11.0],  # 3: a thin box of the beam's own class through it
        ]
    )
    classes = np.array([0, 1, 1, 0])
    assert crossings(classes, boxes) == {(1, 0)}


def test_the_profile_counts_each_crossed_box_once_per_crossing_class() -> None:
    names = ["beam", "stem"]
    two_stems = [(0, 0.5, 0.5, 50 / 320, 10 / 320), (1, 0.47, 0.5, 1 / 320, 30 / 320), (1, 0.53, 0.5, 1 / 320, 30 / 320)]
    none = [(0, 0.5, 0.5, 50 / 320, 10 / 320), (1, 0.5, 0.2, 1 / 320, 30 / 320)]
    images = [LabeledImage(split="train", path=f"{i}.png", width=320, height=320, boxes=two_stems if i < 3 else none)
              for i in range(4)]
    beam, stem = build_profile(names, images)["classes"]
    assert beam["crossed_by"] == {"stem": 0.75}
    assert stem["crossed_by"] == {}
