"""What the stats and lists say about a few hand-built images."""

import numpy as np

from worker.mining.capture import ImagePredictions
from worker.mining.matching import Thresholds
from worker.mining.report import MiningAccumulator, class_file_name

A = [0, 0, 10, 10]
B = [20, 20, 30, 30]
C = [40, 40, 50, 50]


def image(name, gt, gt_cls, pred, pred_cls, conf):
    return ImagePredictions(
        im_file=f"/d/images/train/{name}.png",
        shape=(64, 64),
        gt_boxes=np.array(gt, dtype=float).reshape(-1, 4),
        gt_cls=np.array(gt_cls, dtype=np.int64),
        pred_boxes=np.array(pred, dtype=float).reshape(-1, 4),
        pred_cls=np.array(pred_cls, dtype=np.int64),
        pred_conf=np.array(conf, dtype=float),
    )


def mine(classes=None, reduction="sum"):
    acc = MiningAccumulator(["note", "bar"], Thresholds(), reduction, classes)
    acc.add(image("easy", [A], [0], [A], [0], [0.9]))  # difficulty 0
    acc.add(image("missed", [A, B], [0, 1], [A], [0], [0.9]))  # bar missed: 2.0
    acc.add(image("confused", [A], [1], [A, C], [0, 0], [0.8, 0.7]))  # 1.5 + hard negative 1.5 = 3.0
    acc.add(image("faint", [A], [1], [A], [1], [0.25]))  # low confidence 1.05 < 1.5
    return acc


def test_stats_counts_and_hard_lists():
    acc = mine()
    stats = acc.stats(1.5)
    assert stats["images"] == 4 and stats["hard_images"] == 2 and stats["hard_negative_images"] == 1
    assert [(i.im_file.rsplit("/", 1)[1], i.difficulty) for i in acc.hard_images(1.5)] == [
        ("confused.png", 3.0),
        ("missed.png", 2.0),
    ]
    note, bar = stats["per_class"]
    assert (note["ground_truth"], note["matched"], note["hard_negative"], note["hard_images"]) == (2, 2, 1, 1)
    assert (bar["ground_truth"], bar["false_negative"], bar["misclassification"], bar["low_confidence"]) == (3, 1, 1, 1)
    assert bar["hard_images"] == 2  # missed and confused both involve a bar
    assert stats["kinds"]["matched"] == 2 and stats["kinds"]["false_negative"] == 1
    lists = acc.per_class_lists(1.5)
    assert [i.im_file.rsplit("/", 1)[1] for i in lists[1]] == ["confused.png", "missed.png"]


def test_class_subset_and_max_reduction():
    acc = mine(classes=[0], reduction="max")
    assert [i.im_file.rsplit("/", 1)[1] for i in acc.hard_images(1.5)] == ["confused.png"]  # only the note's error
    assert acc.hard_images(1.5)[0].difficulty == 1.5
    assert [row["name"] for row in acc.stats(1.5)["per_class"]] == ["note"]


def test_detailed_is_hardest_first_with_every_object():
    detailed = mine().detailed()
    assert [d["difficulty"] for d in detailed] == [3.0, 2.0, 1.05, 0.0]
    confused = detailed[0]["objects"]
    assert [(o["source"], o["kind"]) for o in confused] == [
        ("ground_truth", "misclassification"),
        ("prediction", "misclassification"),
        ("prediction", "hard_negative"),
    ]
    assert confused[0]["predicted_class"] == "note" and confused[0]["confidence"] == 0.8


def test_class_file_names_are_safe():
    assert class_file_name("barline_double") == "hard_examples_barline_double.txt"
    assert class_file_name("../x y") == "hard_examples_x_y.txt"
