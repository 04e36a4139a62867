"""``stagerun status`` prints the automatic recipe of a train stage and the localization report of an
evaluate or mine stage."""

from __future__ import annotations

from client.cli import _print_job


def test_status_shows_the_recipe_and_the_localization_report(capsys) -> None:
    localization = {
        "conf": 0.25,
        "per_class": [
            {"name": "stem", "instances": 2714, "median_gt_width_px": 1.16, "found": 0.72, "iou_0.5": 0.44,
             "iou_0.75": 0.17, "median_width_error_px": 0.67, "median_centre_error_px": 0.24},
            {"name": "unused", "instances": 0, "median_gt_width_px": None, "found": None, "iou_0.5": None,
             "iou_0.75": None, "median_width_error_px": None, "median_centre_error_px": None},
        ],
    }
    recipe = {"choices": [{"option": "widen_thin", "value": {"target_px": 8.0, "classes": ["stem"]},
                           "reason": "thin classes at imgsz 320: median thin side stem (1.18 px)"}]}
    job = {
        "id": "j1", "name": "omr", "state": "succeeded", "progress": "done", "error": None,
        "stages": [
            {"index": 0, "type": "train", "state": "succeeded", "epochs": 20, "epoch": 20, "duration_s": 3.0,
             "error": None, "info": {"automatic_recipe": recipe}, "results": {}},
            {"index": 1, "type": "evaluate", "state": "succeeded", "epochs": None, "epoch": None, "duration_s": 1.0,
             "error": None, "info": {}, "results": {"split": "test", "localization": localization}},
        ],
    }
    _print_job(job)
    out = capsys.readouterr().out
    assert 'widen_thin = {"target_px": 8.0, "classes": ["stem"]}: thin classes at imgsz 320' in out
    assert "localization on test (conf 0.25)" in out
    stem = next(line for line in out.splitlines() if line.strip().startswith("stem"))
    assert stem.split() == ["stem", "2714", "1.16", "72%", "44%", "17%", "+0.67", "0.24"]
    assert "unused" not in out
