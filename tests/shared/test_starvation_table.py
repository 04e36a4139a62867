from client.cli import _print_job
from client.progress import starvation_table

REPORT = {
    "first_epoch": {
        "epoch": 1,
        "batches": 8,
        "classes": {
            "stem": {"boxes": 908, "unanchored": 0.99, "starved": 1.0},
            "notehead": {"boxes": 916, "unanchored": 0.0, "starved": 0.0},
        },
    },
    "last_epoch": {"epoch": 20, "batches": 8, "classes": {"stem": {"boxes": 900, "unanchored": 0.0, "starved": 0.02}}},
}


def test_starvation_table_has_a_row_per_class_and_a_column_pair_per_epoch():
    lines = starvation_table(REPORT).splitlines()
    assert lines[0].split() == ["class", "boxes", "epoch", "1", "unanchored", "starved", "epoch", "20", "unanchored",
                                "starved"]
    assert lines[1].split() == ["stem", "908", "99.0%", "100.0%", "0.0%", "2.0%"]
    assert lines[2].split() == ["notehead", "916", "0.0%", "0.0%", "-", "-"]


def test_status_prints_the_table_only_when_a_stage_has_a_report(capsys):
    stage = {"index": 0, "type": "train", "state": "succeeded", "epoch": 20, "epochs": 20, "duration_s": 3.0}
    job = {"id": "j", "name": "n", "state": "succeeded", "progress": "1/1", "stages": [stage]}
    _print_job(job)
    assert "starvation" not in capsys.readouterr().out
    _print_job({**job, "stages": [{**stage, "info": {"starvation": REPORT}}]})
    out = capsys.readouterr().out
    assert "starvation report" in out and "     stem" in out and "100.0%" in out


def test_a_one_epoch_run_shows_its_measurement_once():
    header = starvation_table({**REPORT, "last_epoch": REPORT["first_epoch"]}).splitlines()[0]
    assert header.count("unanchored") == 1
