"""End to end through the real CLI: Ray Tune + Optuna + ASHA over Lightning trials, Parquet tables."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from optuna.trial import TrialState

from results.query import best_trials, load_epochs, load_trials
from study.search import RAY_TRIAL_ID, journal_path, open_study
from tests.helpers.study import REPO, TINY, check_tables, env_for, study

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


pytestmark = pytest.mark.slow


def test_both_tasks_end_to_end(tmp_path):
    storage = tmp_path / "runs"
    tiny = [a for a in TINY if a != "--no-report"]  # this one study writes its report at the end
    proc = study(["--storage", str(storage), "--name", "e2e", "--num-samples", "2", "--epochs", "2", *tiny], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study_dir = storage / "e2e"
    trials, rows = check_tables(study_dir, ("binary", "multiclass"), n_trials=2, epochs=2)
    assert len(rows) == trials["epochs_completed"].sum()
    best = best_trials(study_dir)
    assert sorted(best["task"]) == ["binary", "multiclass"]
    for _, row in best.iterrows():
        assert row["checkpoint_path"]
        assert (study_dir / row["task"]).is_dir()
    assert f"tables in {study_dir / 'tables'}" in proc.stdout
    assert "best binary" in proc.stdout and "best multiclass" in proc.stdout
    # Every numeric param column typed; the searched ones filled for every trial.
    for name in ("param_lr", "param_weight_decay", "param_base_channels", "param_depth"):
        assert trials[name].notna().all()
    assert str(trials["param_depth"].dtype) == "Int64"
    check_optuna_agrees(study_dir, trials)
    assert f"report: {study_dir / 'report.html'}" in proc.stdout
    assert "<html" in (study_dir / "report.html").read_text()[:200].lower()
    # The first line names the Ray the study runs on (without a dashboard, no URL); the plan follows.
    first = proc.stdout.splitlines()[:2]
    assert first[0].startswith("Ray: a new local instance, ") and "dashboard" not in first[0], first
    assert first[1].startswith("study e2e: preset smoke (auto: this machine has no GPU); binary, multiclass")


def test_the_dashboard_url_and_the_plan_reach_a_redirected_log_first(tmp_path):
    storage, log = tmp_path / "runs", tmp_path / "study.log"
    args = ["--storage", str(storage), "--name", "log", "--task", "binary", "--num-samples", "1", "--epochs", "1"]
    tiny = [a for a in TINY if a != "--no-dashboard"]
    with open(log, "w") as out:
        driver = subprocess.Popen(
            [sys.executable, "-m", "study.run", *args, *tiny], cwd=REPO, env=env_for(tmp_path), stdout=out
        )
        deadline = time.monotonic() + 240
        while len(log.read_text().splitlines()) < 2 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        running = driver.poll() is None  # the lines arrived while the study runs, not when it exits
        first = log.read_text().splitlines()[:2]
        assert driver.wait(timeout=300) == 0
    assert running, "the first lines were held back until the driver exited"
    assert first[0].startswith("Ray: a new local instance, ") and "; dashboard http://127.0.0.1:" in first[0], first
    assert first[1].startswith("study log: preset smoke"), first


def test_sigint_exits_130_and_resume_finishes_exactly_the_planned_trials(tmp_path):
    storage = tmp_path / "runs"
    args = ["--storage", str(storage), "--name", "r", "--task", "binary", "--num-samples", "3", "--epochs", "3"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "study.run", *args, *TINY, "--max-concurrent", "1"],
        cwd=REPO,
        env=env_for(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    epochs_file = storage / "r" / "tables" / "epochs.parquet"
    deadline = time.monotonic() + 240
    while not epochs_file.exists() and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert epochs_file.exists(), "no epoch was reported"
    driver.send_signal(signal.SIGINT)
    out, _ = driver.communicate(timeout=180)
    assert driver.returncode == 130, out[-3000:]
    assert "--resume --name r" in out
    before = load_epochs(storage / "r")
    assert len(load_trials(storage / "r")) < 3 or (load_trials(storage / "r")["status"] == "running").any()

    proc = study([*args, *TINY, "--max-concurrent", "1", "--resume"], tmp_path)  # the up-arrow habit
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials, rows = check_tables(storage / "r", ("binary",), n_trials=3, epochs=3)
    check_optuna_agrees(storage / "r", trials)
    # Progress never went backwards: every epoch row from before the interrupt is still there.
    merged = before.merge(rows, on=["trial_id", "epoch"], how="left", indicator=True)
    assert (merged["_merge"] == "both").all()


def test_a_trial_that_cannot_fit_on_this_machine_is_a_usage_error(tmp_path):
    storage = tmp_path / "runs"
    proc = study(["--storage", str(storage), "--preset", "full", "--no-dashboard"], tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "needs 1 GPU but this machine has 0" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not storage.exists()
