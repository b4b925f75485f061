"""Faults injected into real studies (real Ray, Optuna, Lightning, Parquet), through the CLI.

Each trial's faults are driven by marker files (study/faults.py), as Ray's own fault tests do, so a
retried trial is not failed forever. Every test checks the tables' contract: rows exactly once.
"""

from __future__ import annotations

import pytest

from results.query import load_trials
from results.schema import RESUMED, RETRIED, WORKER_DIED
from tests.helpers.study import TINY, check_tables, fired, reported, reported_epochs, study

pytestmark = pytest.mark.slow


def _args(tmp_path, name, n, epochs):
    storage = tmp_path / "runs"
    base = ["--storage", str(storage), "--name", name]
    return storage / name, base, [*base, "--task", "binary", "--num-samples", str(n), "--epochs", str(epochs), *TINY]


@pytest.mark.parametrize("k", [0, 1, 2], ids=["k=0", "k=mid", "k=last"])
def test_worker_killed_after_epoch_k_finishes_from_its_checkpoint(tmp_path, k):
    """Killed once epoch k's checkpoint is with Tune. k = E - 1 kills it in the last epoch: after the last
    report there is nothing left to kill (Tune ends the trial at its epoch budget)."""
    epochs = 3
    study_dir, _, args = _args(tmp_path, "kill", 1, epochs)
    proc = study(args, tmp_path, faults=[{"action": "kill", "epoch": k, "trials": "all", "times": 1}])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(fired(tmp_path)) == 1  # the worker really was SIGKILLed once
    trials, rows = check_tables(study_dir, ("binary",), n_trials=1, epochs=epochs)
    (trial_id,) = trials["trial_id"]
    assert trials["status"].iloc[0] == "completed"
    assert len(rows) == epochs  # 0 lost, 0 duplicated
    # Finished epochs are not redone: the run after the kill starts at epoch k + 1 (Ray counts a run's reports
    # from 1 again after a restore) and goes on to the last. What Ray's log holds before that run is only checked
    # for order: on a restart Ray copies the log back from the storage's copy, which may lag the last report.
    seen = reported_epochs(study_dir, "binary", trial_id)
    since = reported(study_dir, "binary", trial_id, "iterations_since_restore")
    last_run = len(since) - 1 - since[::-1].index(1)
    assert seen[last_run:] == list(range(k + 1, epochs + 1)), (seen, since)
    assert seen[:last_run] == list(range(1, last_run + 1)), (seen, since)
    # On the record: its worker died on a node that stayed (the one node here), and it ran there again
    assert list(trials["restart_reasons"].iloc[0]) == [WORKER_DIED]
    nodes = list(trials["nodes"].iloc[0])  # k = 0: the first run reported nothing, its node is not known
    assert len(nodes) == 2 and set(nodes) - {None} == {trials["node"].iloc[0]}, nodes
    assert f"binary trial {trial_id} restarted" in proc.stdout


@pytest.mark.parametrize("restart", [False, True], ids=["resume-errored", "restart-errored"])
def test_errored_trial_then_resume(tmp_path, restart):
    epochs = 3
    study_dir, base, args = _args(tmp_path, "err", 1, epochs)
    # Fails at the start of epoch 2, and with no retries (the NaN test has them) it is ERROR at once.
    faults = [{"action": "raise", "epoch": 2, "trials": "one", "times": 1}]  # "one": not the restarted id
    proc = study([*args, "--max-failures", "0"], tmp_path, faults=faults)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(fired(tmp_path)) == 1
    trials = load_trials(study_dir)
    (trial_id,) = trials["trial_id"]
    assert trials["status"].iloc[0] == "error"
    assert "injected fault" in trials["error"].iloc[0]
    assert f"ERROR binary trial {trial_id}" in proc.stdout
    assert list(trials["restart_reasons"].iloc[0]) == []  # not retried

    again = study([*base, "--resume", *(["--restart-errored"] if restart else [])], tmp_path, faults=faults)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    trials, rows = check_tables(study_dir, ("binary",), n_trials=1, epochs=epochs)
    assert trials["status"].iloc[0] == "completed"
    assert len(rows) == epochs
    if restart:  # from scratch, as a new Ray trial with the same parameters
        (new_id,) = trials["trial_id"]
        assert new_id != trial_id
        assert reported_epochs(study_dir, "binary", new_id) == [1, 2, 3]
        assert f"restarting errored binary trial {trial_id}" in again.stderr
    else:  # from the epoch-1 checkpoint: nothing redone
        assert trials["trial_id"].iloc[0] == trial_id
        assert reported_epochs(study_dir, "binary", trial_id) == [1, 2, 3]
        assert list(trials["restart_reasons"].iloc[0]) == [RESUMED]


def test_nan_loss_ends_the_trial_in_error_and_fail_in_optuna(tmp_path):
    """A deterministic failure (every attempt's loss turns NaN) is retried MAX_FAILURES times, then listed as
    an error beside the trial that finished."""
    from results.plan import MAX_FAILURES
    from study.search import journal_path, open_study

    epochs = 3
    study_dir, _, args = _args(tmp_path, "nan", 2, epochs)
    faults = [{"action": "nan", "epoch": 2, "trials": "one", "times": 100}]
    proc = study([*args, "--max-concurrent", "1"], tmp_path, faults=faults)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(fired(tmp_path)) == 1 + MAX_FAILURES
    trials, _ = check_tables(study_dir, ("binary",), n_trials=2, epochs=epochs)
    bad = trials[trials["status"] == "error"]
    assert len(bad) == 1
    assert "non-finite" in bad["error"].iloc[0]
    assert f"ERROR binary trial {bad['trial_id'].iloc[0]}" in proc.stdout
    assert list(bad["restart_reasons"].iloc[0]) == [RETRIED] * MAX_FAILURES  # its retries, on the record
    good = trials[trials["status"] != "error"]
    assert good["objective_best"].notna().all()
    assert (good["objective_best"].abs() < float("inf")).all()
    # Optuna's view, from the study's journal: no trial left RUNNING, the NaN one FAILed.
    ot = open_study(journal_path(study_dir, "binary"), "binary")
    states = sorted(t.state.name for t in ot.trials)
    assert "RUNNING" not in states
    assert states.count("FAIL") == 1
    assert len(states) == 2
