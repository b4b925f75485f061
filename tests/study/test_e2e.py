"""End to end through the real CLI: Ray Tune + Optuna + ASHA over Lightning trials, Parquet tables."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from results.query import load_epochs, load_trials
from tests.helpers.study import REPO, TINY, check_optuna_agrees, check_tables, env_for, study

pytestmark = pytest.mark.slow


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


@pytest.mark.long(minutes=1.5)
def test_sigint_exits_130_and_resume_finishes_exactly_the_planned_trials(tmp_path):
    storage = tmp_path / "runs"
    args = ["--storage", str(storage), "--name", "r", "--task", "binary", "--num-samples", "2", "--epochs", "3"]
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
    # The first of its own lines name the Ray it runs on (without a dashboard, no URL), then the plan.
    ours = [line for line in out.splitlines() if line.startswith(("Ray: ", "study r: "))][:2]
    assert ours[0].startswith("Ray: a new local instance, ") and "dashboard" not in ours[0], ours
    assert ours[1].startswith("study r: preset smoke (auto: this machine has no GPU); binary, "), ours
    before = load_epochs(storage / "r")
    assert len(load_trials(storage / "r")) < 2 or (load_trials(storage / "r")["status"] == "running").any()

    proc = study([*args, *TINY, "--max-concurrent", "1", "--resume"], tmp_path)  # the up-arrow habit
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials, rows = check_tables(storage / "r", ("binary",), n_trials=2, epochs=3)
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
