"""StudyTables: upsert keys, resume, derived columns, atomic writes under SIGKILL."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from results import tables as tables_module
from results.query import TableError, load_epochs, load_trials
from results.tables import StudyTables

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parents[2]


def _trial(tables: StudyTables, trial_id: str, status: str = "completed", budget: int = 10, **kw) -> None:
    args = {
        "params": {"lr": 1e-3, "depth": 4},
        "epoch_budget": budget,
        "devices": 2.0,
        "started_at": T0,
        "finished_at": T0 + timedelta(seconds=50),
        "node": "n1",
        "checkpoint_path": "/c.ckpt",
    }
    args.update(kw)
    tables.record_trial(trial_id, "binary", status=status, **args)


def test_repeated_epoch_overwrites(tmp_path):
    t = StudyTables(tmp_path / "tables", "s", "val_loss")
    t.record_epoch("a", "binary", 1, {"val_loss": 0.9})
    t.record_epoch("a", "binary", 1, {"val_loss": 0.5, "training_iteration": 1, "trial_id": "zz"})
    t.record_epoch("a", "binary", 2, {"val_loss": 0.4})
    df = load_epochs(tmp_path)
    assert len(df) == 2
    assert df.loc[df.epoch == 1, "val_loss"].tolist() == [0.5]
    assert df["val_iou_c2"].isna().all()  # missing metrics are null


def test_resume_keeps_rows_and_continues_upserting(tmp_path):
    t = StudyTables(tmp_path / "tables", "s", "val_loss")
    for e in (1, 2):
        t.record_epoch("a", "binary", e, {"val_loss": 1.0 / e, "epoch_seconds": 3.0})
    _trial(t, "a", status="running", finished_at=None)
    del t
    t = StudyTables(tmp_path / "tables", "s", "val_loss")
    t.record_epoch("a", "binary", 2, {"val_loss": 0.25, "epoch_seconds": 3.0})  # re-delivered
    t.record_epoch("a", "binary", 3, {"val_loss": 0.3, "epoch_seconds": 3.0})
    epochs = load_epochs(tmp_path)
    assert epochs["epoch"].tolist() == [1, 2, 3]
    assert epochs["val_loss"].tolist() == [1.0, 0.25, 0.3]
    trials = load_trials(tmp_path)
    assert len(trials) == 1
    row = trials.iloc[0]
    # the running row followed the new epochs and kept its inputs
    assert row["epochs_completed"] == 3
    assert row["best_epoch"] == 2
    assert row["param_depth"] == 4
    assert row["wall_seconds"] == 9.0  # unfinished: sum of epoch seconds
    assert row["device_seconds"] == 18.0


def test_reopen_with_other_study_name_refuses(tmp_path):
    t = StudyTables(tmp_path / "tables", "s", "val_loss")
    t.record_epoch("a", "binary", 1, {"val_loss": 1.0})
    with pytest.raises(TableError, match="holds study 's'"):
        StudyTables(tmp_path / "tables", "other", "val_loss")


@pytest.mark.parametrize(
    ("objective", "values", "best", "best_epoch", "last"),
    [
        ("val_loss", [0.9, 0.3, 0.5, math.nan], 0.3, 2, math.nan),
        ("val_dice_fg", [0.2, 0.7, 0.6, 0.7], 0.7, 2, 0.7),
    ],
)
def test_objective_best_last_respect_mode(tmp_path, objective, values, best, best_epoch, last):
    t = StudyTables(tmp_path / "tables", "s", objective)
    for e, v in enumerate(values, start=1):
        other = {"val_dice_fg": e / 10} if objective == "val_loss" else {"val_loss": 2.0 - e / 10}
        t.record_epoch("a", "binary", e, {**other, objective: v})
    _trial(t, "a")
    row = load_trials(tmp_path).iloc[0]
    assert row["objective"] == objective
    assert row["objective_mode"] == ("min" if objective == "val_loss" else "max")
    assert row["objective_best"] == best
    assert row["best_epoch"] == best_epoch
    assert (math.isnan(last) and math.isnan(row["objective_last"])) or row["objective_last"] == last
    if objective == "val_loss":
        assert row["best_val_dice_fg"] == 0.4  # max-mode metric: its own mode, not the objective's
    else:
        assert row["best_val_loss"] == 1.6
    assert row["epochs_completed"] == 4
    assert row["wall_seconds"] == 50.0
    assert row["device_seconds"] == 100.0


def test_seconds_saved_only_for_stopped_early(tmp_path):
    t = StudyTables(tmp_path / "tables", "s", "val_loss")
    for tid in ("early", "done"):
        for e, secs in enumerate([10.0, 20.0, 30.0], start=1):
            t.record_epoch(tid, "binary", e, {"val_loss": 1.0, "epoch_seconds": secs})
    _trial(t, "early", status="stopped_early", budget=8)
    _trial(t, "done", status="completed", budget=8)
    rows = load_trials(tmp_path).set_index("trial_id")
    assert rows.loc["early", "seconds_saved"] == (8 - 3) * 20.0
    assert rows.loc["done", "seconds_saved"] == 0.0


def test_record_trial_validates(tmp_path):
    t = StudyTables(tmp_path / "tables", "s", "val_loss")
    with pytest.raises(ValueError, match="unknown params"):
        _trial(t, "a", params={"lr": 1e-3, "momentum": 0.9})
    with pytest.raises(ValueError, match="unknown status"):
        _trial(t, "a", status="finished")
    with pytest.raises(ValueError, match="timezone-aware"):
        _trial(t, "a", started_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="integer"):
        _trial(t, "a", params={"depth": 3.5})
    with pytest.raises(ValueError, match="epoch"):
        t.record_epoch("a", "binary", 0, {})
    with pytest.raises(ValueError, match="unknown objective"):
        StudyTables(tmp_path / "t2", "s", "accuracy")
    assert not (tmp_path / "tables" / "trials.parquet").exists()


def test_failed_replace_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    t = StudyTables(tmp_path / "tables", "s", "val_loss")
    t.record_epoch("a", "binary", 1, {"val_loss": 1.0})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(tables_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        t.record_epoch("a", "binary", 2, {"val_loss": 0.5})
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["epochs.parquet"]
    assert load_epochs(tmp_path)["epoch"].tolist() == [1]


def test_open_removes_leftover_temp_files(tmp_path):
    d = tmp_path / "tables"
    d.mkdir()
    (d / ".epochs.parquet.123.ab.tmp").write_bytes(b"PAR1 half")
    (d / "notes.txt").write_text("keep")
    StudyTables(d, "s", "val_loss")
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]


_WRITER = """
import sys
from datetime import datetime, timezone
from results.tables import StudyTables
t = StudyTables(sys.argv[1], "s", "val_loss")
for e in range(1, 100000):
    t.record_epoch("a", "binary", e, {"val_loss": 1.0 / e, "epoch_seconds": float(e)})
    t.record_trial("a", "binary", status="running", params={"lr": 1e-3}, epoch_budget=100000, devices=1.0,
                   started_at=datetime(2025, 1, 1, tzinfo=timezone.utc), finished_at=None, node="n",
                   checkpoint_path=None)
    if e == 3:
        print("ready", flush=True)
"""


@pytest.mark.slow
def test_sigkill_during_writes_leaves_whole_version(tmp_path):
    rng = random.Random(1234)
    study = tmp_path / "study"
    for _ in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(study / "tables")],
            cwd=REPO,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            assert proc.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.0, 0.05))
        finally:
            proc.kill()
            proc.wait()
        epochs = load_epochs(study)
        n = len(epochs)
        assert epochs["epoch"].tolist() == list(range(1, n + 1))
        assert epochs["val_loss"].tolist() == [1.0 / e for e in range(1, n + 1)]
        trials = load_trials(study)
        assert len(trials) == 1
        # trials is written after epochs: it lags by at most the record in flight
        assert n - 1 <= trials["epochs_completed"].iloc[0] <= n
        StudyTables(study / "tables", "s", "val_loss")  # cleans up, and resumes for the next round
        assert not [p for p in (study / "tables").iterdir() if p.name.startswith(".")]
