"""Parameter importance by Optuna from the trials table alone (study.importance), the table the study keeps of
it (results.importance), and ``python -m study.importance`` for a study written before it kept one: on a path
and in a real S3 server (moto on 127.0.0.1)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from results import importance
from results.query import load_trials
from results.store import child, exists, resolve
from results.tables import StudyTables
from study.importance import direction_of, importance_table, main, param_importances, save, tables_study
from tests.assets import make_golden
from tests.helpers.study import saved_study

V1 = Path(__file__).resolve().parents[1] / "assets" / "v1"  # tables of the first release: no importances


def _trials(n: int = 16) -> pd.DataFrame:
    """``n`` finished trials whose objective is set by lr alone (peak at 1e-3); depth and loss vary at random
    and say nothing; one errored and one running trial that must not count."""
    rows = []
    for i in range(n):
        lr = 10 ** (-5 + 4 * i / (n - 1))
        rows.append(
            {"task": "binary", "trial_id": f"t{i}", "status": "stopped_early" if i % 3 else "completed",
             "objective_best": 1 - abs(math.log10(lr) + 3) / 4, "objective_mode": "max",
             "param_lr": lr, "param_depth": 2 + (i * 7) % 3, "param_loss": ("dice", "bce")[(i * 5) % 2],
             "param_pos_weight": 1.0}
        )  # fmt: skip
    rows.append({**rows[0], "trial_id": "err", "status": "error", "objective_best": 2.0})
    rows.append({**rows[0], "trial_id": "run", "status": "running", "objective_best": 2.0})
    frame = pd.DataFrame(rows)
    return frame.astype({"param_depth": "int64", "param_loss": "string"})


def test_the_tables_study_holds_each_finished_trial_at_its_best_value_on_the_domains_covered():
    trials = _trials()
    study = tables_study(trials, "maximize")
    assert [t.user_attrs["trial_id"] for t in study.trials] == [f"t{i}" for i in range(16)]  # no error, no running
    assert all(t.state == TrialState.COMPLETE for t in study.trials)  # stopped early counts at its best value
    assert [t.value for t in study.trials] == list(trials["objective_best"][:16])
    dists = study.trials[0].distributions
    assert dists["lr"] == FloatDistribution(1e-5, 0.1, log=True)  # spans 10^4: log scale, as it is sampled
    assert dists["depth"] == IntDistribution(2, 4)
    assert dists["loss"] == CategoricalDistribution(("bce", "dice"))
    assert "pos_weight" not in dists  # a single value says nothing


def test_importance_goes_to_the_parameter_that_sets_the_objective():
    got = param_importances(_trials(), "maximize")
    assert next(iter(got)) == "lr" and set(got) == {"lr", "depth", "loss"}
    assert sum(got.values()) == pytest.approx(1.0)
    assert got["lr"] > 0.5


def test_no_importance_from_fewer_than_two_different_values():
    trials = _trials()
    assert param_importances(trials.iloc[[0, 16, 17]], "maximize") == {}  # one finished trial
    same = trials.assign(objective_best=0.5)
    assert param_importances(same, "maximize") == {}
    assert direction_of("min") == "minimize" and direction_of("max") == "maximize"


def test_the_table_has_a_row_per_task_and_parameter_most_important_first(tmp_path):
    trials = pd.concat([_trials(), _trials(2).assign(task="multiclass", objective_best=0.5)])
    (tmp_path / "tables").mkdir()
    tables = StudyTables(tmp_path / "tables", "s", "val_dice_fg", {"lr": float})
    assert tables.write_table(importance.IMPORTANCE_FILE, importance_table(trials))
    kept = importance.load(tmp_path)
    assert kept is not None and set(kept["task"]) == {"binary"}  # multiclass: two trials of one value
    assert list(kept["param"]) == list(param_importances(_trials(), "maximize"))
    assert list(kept["importance"]) == pytest.approx(list(param_importances(_trials(), "maximize").values()))
    assert set(kept["trials"]) == {16}
    tables.held = True  # the storage is failing: nothing is written
    (tmp_path / "tables" / importance.IMPORTANCE_FILE).unlink()
    assert not tables.write_table(importance.IMPORTANCE_FILE, importance_table(trials))
    assert importance.load(tmp_path) is None


def _old_study(tmp_path: Path) -> Path:
    cfg = saved_study(tmp_path, name=make_golden.STUDY, tasks=("binary", "multiclass"))
    shutil.copytree(V1, cfg.tables_dir)
    return cfg.study_dir


def test_the_command_saves_the_importances_of_an_older_study(tmp_path, capsys):
    study_dir = _old_study(tmp_path)
    assert importance.load(study_dir) is None
    assert main([str(study_dir)]) == 0
    where = study_dir / "tables" / importance.IMPORTANCE_FILE
    assert capsys.readouterr().out == f"wrote {where}\n"
    kept = importance.load(study_dir)
    trials = load_trials(study_dir)
    for task, rows in kept.groupby("task"):
        expected = param_importances(trials[trials["task"] == task], "maximize")
        assert dict(zip(rows["param"], rows["importance"])) == pytest.approx(expected)
    assert set(kept["task"]) == {"binary", "multiclass"}
    assert sorted(p.name for p in where.parent.iterdir()) == sorted([*(p.name for p in V1.iterdir()), where.name])


def test_a_missing_or_damaged_study_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    damaged = _old_study(tmp_path)
    trials = damaged / "tables" / "trials.parquet"
    trials.write_bytes(trials.read_bytes()[:100])
    for argv, words in (
        ([tmp_path / "missing"], "no such study directory"),
        ([tmp_path / "plain"], "is not a study (no study.json)"),
        ([damaged], "trials.parquet"),
        ([], "the following arguments are required: study_dir"),
    ):
        assert main([str(a) for a in argv]) == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and words in lines[0], lines
    assert list((tmp_path / "plain").iterdir()) == []
    assert importance.load(damaged) is None  # nothing written


def test_the_command_saves_into_a_study_in_object_storage(s3, tmp_path):
    local = _old_study(tmp_path)
    fs, root = resolve(s3.uri(f"stores/{tmp_path.name}"))
    pafs.copy_files(str(local), f"{root}/{local.name}", destination_filesystem=fs)
    remote = child(s3.uri(f"stores/{tmp_path.name}"), local.name)
    assert importance.load(remote) is None
    where = save(remote)
    assert exists(child(remote, "tables", importance.IMPORTANCE_FILE)) and "endpoint_override" in where
    assert main([str(local)]) == 0
    pd.testing.assert_frame_equal(
        importance.load(remote).drop(columns="computed_at"), importance.load(local).drop(columns="computed_at")
    )
