"""Run the real CLI in a subprocess with its own HOME (no real Ray token is touched), lay out a saved study
directory, and check the tables every finished study keeps."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState

from results import importance
from results.plan import StudyConfig
from results.query import load_epochs, load_trials
from results.schema import FINAL_STATUSES
from study.faults import ENV as FAULTS_ENV
from study.importance import importance_table
from study.presets import SMOKE
from study.search import RAY_TRIAL_ID, journal_path, open_study
from tests.helpers.driver import REPO, driver_env

# Tiny rasters: 6 instances of about 160-640 x 24-32 px; 2 epochs. Each trial takes seconds on one core.
TINY = ["--instances", "6", "--scale", "0.05", "--no-dashboard", "--cpus-per-trial", "1", "--no-report"]


def env_for(home: Path, faults: list[dict] | None = None) -> dict[str, str]:
    """A private HOME (Ray's token lives there) and, optionally, faults for the trials to inject."""
    if faults is None:
        return driver_env(home)
    home.mkdir(parents=True, exist_ok=True)
    spec = home / "faults.json"
    spec.write_text(json.dumps({"markers": str(home / "fault-markers"), "faults": faults}))
    return driver_env(home, {FAULTS_ENV: str(spec)})


def fired(home: Path, fault: int = 0) -> list[str]:
    """Marker files of the times fault number `fault` fired (one per firing)."""
    return sorted(p.name for p in (home / "fault-markers").glob(f"{fault}-*-*"))


def reported(study_dir: Path, task: str, trial_id: str, key: str) -> list:
    """``key`` of every result the trial reported to Tune, in order, repeats included (Ray's own result log)."""
    lines = (study_dir / task / f"trial_{trial_id}" / "result.json").read_text().splitlines()
    return [json.loads(line)[key] for line in lines if line.strip()]


def reported_epochs(study_dir: Path, task: str, trial_id: str) -> list[int]:
    """Every epoch the trial reported to Tune, in order, repeats included (Ray's own result log)."""
    return reported(study_dir, task, trial_id, "epoch")


def study(args: list[str], home: Path, timeout: float = 400, faults: list[dict] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "study.run", *args],
        cwd=REPO,
        env=env_for(home, faults),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def script(code: str, args: list[str], home: Path, timeout: float = 400) -> subprocess.CompletedProcess:
    """Run a Python snippet (e.g. one that builds a simulated cluster) with a private HOME."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def check_tables(study_dir: Path, tasks: tuple[str, ...], n_trials: int, epochs: int) -> tuple[pd.DataFrame, ...]:
    """The contract every finished study's tables keep."""
    trials, rows = load_trials(study_dir), load_epochs(study_dir)
    assert sorted(trials["task"].unique()) == sorted(tasks)
    for task in tasks:
        assert (trials["task"] == task).sum() == n_trials, trials[["task", "trial_id", "status"]]
    assert trials["trial_id"].is_unique
    assert set(trials["status"]) <= set(FINAL_STATUSES)  # none running or interrupted once a study has ended
    assert not rows.duplicated(["trial_id", "epoch"]).any()
    for frame in (trials, rows):
        objects = [name for name, dtype in frame.dtypes.items() if dtype is pd.api.types.pandas_dtype(object)]
        assert not objects, objects
    # Every trial's epochs are exactly 1..epochs_completed, once each.
    for _, t in trials.iterrows():
        got = sorted(rows.loc[rows["trial_id"] == t["trial_id"], "epoch"])
        assert got == list(range(1, t["epochs_completed"] + 1)), (t["trial_id"], got)
        assert (0 if t["status"] == "error" else 1) <= t["epochs_completed"] <= epochs
        if t["status"] == "completed":
            assert t["epochs_completed"] == epochs
        # What early stopping saved: the epochs not run at the trial's own mean epoch seconds; nothing otherwise.
        seconds = rows.loc[rows["trial_id"] == t["trial_id"], "epoch_seconds"]
        if t["status"] == "stopped_early":
            assert t["epochs_completed"] < epochs
            assert seconds.notna().all(), t["trial_id"]
            saved = (t["epoch_budget"] - t["epochs_completed"]) * seconds.mean()
            assert t["seconds_saved"] == pytest.approx(saved), (t["trial_id"], t["seconds_saved"], saved)
        else:
            assert t["seconds_saved"] == 0, (t["trial_id"], t["status"], t["seconds_saved"])
    objective = trials["objective"].iloc[0]
    assert rows[objective].notna().all()
    check_importances(study_dir, trials)
    return trials, rows


def check_importances(study_dir: Path | str, trials: pd.DataFrame) -> None:
    """The study keeps its parameter importances: those of its trials table as it ended."""
    kept = importance.load(study_dir)
    assert kept is not None, f"{study_dir}: no {importance.IMPORTANCE_FILE}"
    fresh = importance_table(trials).to_pandas()
    assert {(r.task, r.param): (r.trials, pytest.approx(r.importance)) for r in fresh.itertuples()} == {
        (r.task, r.param): (r.trials, r.importance) for r in kept.itertuples()
    }


def saved_study(tmp_path: Path, *, with_trial: bool = False, **changes) -> StudyConfig:
    """A study directory as `python -m study.run --task binary ...` leaves it: the saved plan and, with
    ``with_trial``, one trial row still ``running`` (an interrupted driver)."""
    from results.tables import StudyTables

    presets = {t: replace(p, n_instances=6, scale=0.05) for t, p in SMOKE.tasks.items()}
    fields = dict(
        name="x", storage=str(tmp_path / "runs"), preset="smoke", tasks=("binary",), task_presets=presets,
        epochs=4, num_samples=3, max_concurrent=None, gpus_per_trial=0.0, cpus_per_trial=1.0, grace_period=1,
        reduction_factor=2, seed=0, metric="val_dice_fg",
    )  # fmt: skip
    cfg = StudyConfig(**{**fields, **changes})
    cfg.study_dir.mkdir(parents=True)
    (cfg.study_dir / "study.json").write_text(cfg.to_json())
    if with_trial:
        StudyTables(cfg.tables_dir, cfg.name, cfg.metric).record_trial(
            "t1", "binary", status="running", params={}, epoch_budget=cfg.epochs, devices=1.0, started_at=None,
            finished_at=None, node="", checkpoint_path=None,
        )  # fmt: skip
    return cfg


OPTUNA_STATE = {"completed": TrialState.COMPLETE, "stopped_early": TrialState.PRUNED, "error": TrialState.FAIL}


def check_optuna_agrees(study_dir, trials) -> None:
    """Each task's Optuna study (journal file) holds every trial, in the state the tables give, none RUNNING."""
    for task, rows in trials.groupby("task"):
        ot = open_study(journal_path(study_dir, str(task)), str(task))
        latest = {t.user_attrs[RAY_TRIAL_ID]: t for t in sorted(ot.trials, key=lambda t: t.number)}
        assert not [t for t in ot.trials if t.state == TrialState.RUNNING]
        for row in rows.itertuples():
            frozen = latest[row.trial_id]
            assert frozen.state == OPTUNA_STATE[row.status], (row.trial_id, row.status, frozen.state)
            if row.status == "completed":
                assert frozen.value == row.objective_best
            if row.status == "stopped_early":
                assert len(frozen.intermediate_values) == row.epochs_completed
