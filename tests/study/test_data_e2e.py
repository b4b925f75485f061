"""End to end through the real CLI on dataset folders: ``--data`` on an exported set of each task, and a study
whose objective is the second validation set (``--val-data``, a differently-styled export), tabled and reported."""

from __future__ import annotations

import json

import pytest

from models.metric_names import VAL2_METRICS, VAL_METRICS
from results.query import load_epochs
from tests.helpers.datasets import exported
from tests.helpers.study import check_tables, study

pytestmark = pytest.mark.slow
QUIET = ["--no-dashboard", "--cpus-per-trial", "1"]


def test_a_study_on_an_exported_set_with_a_second_validation_set(tmp_path):
    data = exported(tmp_path / "data", "binary", 8)
    val = exported(tmp_path / "rescanned", "binary", 4, seed=1, rescan=True)
    storage = tmp_path / "runs"
    args = ["--task", "binary", "--data", str(data), "--val-data", str(val), "--metric", "val2_dice_fg"]
    proc = study(
        [*args, "--storage", str(storage), "--name", "real", "--num-samples", "2", "--epochs", "2", *QUIET], tmp_path
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study_dir = storage / "real"
    plan = json.loads((study_dir / "study.json").read_text())
    assert (plan["data"], plan["val_data"]) == (str(data), str(val))
    trials, epochs = check_tables(study_dir, ("binary",), n_trials=2, epochs=2)
    assert (trials["objective"] == "val2_dice_fg").all()
    for name in (*VAL_METRICS, *VAL2_METRICS):
        assert epochs[name].notna().all(), name
    assert trials["best_val2_dice_fg"].notna().all()
    assert (trials["objective_best"] == trials["best_val2_dice_fg"]).all()
    page = (study_dir / "report.html").read_text()
    assert 'id="binary-two-sets"' in page and "The two validation sets" in page
    assert "second validation set" in page and str(val) in page


def test_a_multiclass_study_on_an_exported_set(tmp_path):
    data = exported(tmp_path / "data", "multiclass", 8)
    storage = tmp_path / "runs"
    args = ["--task", "multiclass", "--data", str(data), "--num-samples", "1", "--epochs", "1", "--no-report"]
    proc = study([*args, "--storage", str(storage), "--name", "mc", *QUIET], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check_tables(storage / "mc", ("multiclass",), n_trials=1, epochs=1)
    epochs = load_epochs(storage / "mc")
    assert epochs["val_dice_c2"].notna().all() and epochs["val2_dice_fg"].isna().all()
