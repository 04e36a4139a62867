"""The rows a resumed train stage stores from results.csv: Ultralytics writes an epoch's row and last.pt
before the epoch-end callback stores the row, so a worker killed in between must not leave a gap."""

from __future__ import annotations

from pathlib import Path

from worker.stages.train import checkpointed_rows

HEADER = "epoch,time,train/box_loss,metrics/mAP50(B),lr/pg0\n"


def test_rows_before_the_resume_epoch_as_the_trainer_hands_them(tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    results.write_text(HEADER + "1,3.5,2.25,0.125,0.01\n2,7.25,2,0.25,0.009\n3,11,1.75,0.5,0.008\n")
    assert checkpointed_rows(results, resume_at=3) == [
        {"epoch": 1, "time": 3.5, "train/box_loss": 2.25, "metrics/mAP50(B)": 0.125, "lr/pg0": 0.01},
        {"epoch": 2, "time": 7.25, "train/box_loss": 2.0, "metrics/mAP50(B)": 0.25, "lr/pg0": 0.009},
    ]


def test_a_repeated_epoch_keeps_its_last_row_and_a_cut_row_is_skipped(tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    results.write_text(HEADER + "1,3,2,0.1,0.01\n2,6,1.9,0.2,0.009\n2,9,1.8,0.3,0.009\n3,1")
    rows = checkpointed_rows(results, resume_at=4)
    assert [(row["epoch"], row["metrics/mAP50(B)"]) for row in rows] == [(1, 0.1), (2, 0.3)]


def test_no_results_yet(tmp_path: Path) -> None:
    assert checkpointed_rows(tmp_path / "results.csv", resume_at=2) == []


def test_a_resume_drops_rows_its_checkpoint_does_not_cover(tmp_path) -> None:
    from worker.stages.train import trim_results_csv

    results = tmp_path / "results.csv"
    # epoch 4's row was written, then its checkpoint failed to save; a kill cut a fifth row short
    results.write_text("epoch,time,loss\n1,1.0,0.9\n2,2.0,0.8\n3,3.0,0.7\n4,4.0,0.6\n5,5")
    assert trim_results_csv(results, resume_at=4) == 2
    assert results.read_text() == "epoch,time,loss\n1,1.0,0.9\n2,2.0,0.8\n3,3.0,0.7\n"
    assert trim_results_csv(results, resume_at=4) == 0
    assert trim_results_csv(tmp_path / "missing.csv", resume_at=1) == 0
