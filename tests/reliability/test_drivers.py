"""One driver per study, and SIGTERM, through the CLI: two new drivers started together, SIGTERM to the one that
runs, two ``--resume`` drivers started together, SIGKILL to the one that runs, then ``--resume`` once its
heartbeat has lapsed. Each second driver exits 2 naming the holder before Ray starts; the study ends with
exactly the planned trials, nothing errored, nothing lost. The repeated runs with figures are in
``bench/faults.py``."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from results.query import load_trials
from study.lock import ENV_HEARTBEAT, ENV_LAPSE, lock_path
from tests.helpers.driver import Driver, kill_orphans, progress
from tests.helpers.study import TINY, check_tables, env_for

pytestmark = pytest.mark.slow

TASK = ["--task", "binary", "--num-samples", "2", "--epochs", "5", "--max-concurrent", "2", *TINY]
LOCK_ENV = {ENV_HEARTBEAT: "0.5", ENV_LAPSE: "3"}


def start_driver(args: list[str], home) -> Driver:
    """A driver with fast lock heartbeats."""
    return Driver(args, home, {**env_for(home), **LOCK_ENV})


def pair(args: list[str], homes) -> tuple[Driver, Driver]:
    """Two drivers started together; returns (the one that runs, the one refused), checking the refusal."""
    a, b = start_driver(args, homes[0]), start_driver(args, homes[1])
    deadline = time.monotonic() + 120
    while a.proc.poll() is None and b.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    runner, loser = (a, b) if b.proc.poll() is not None else (b, a)
    assert loser.wait() == 2, loser.output[-3000:]
    refusal = [line for line in loser.output.splitlines() if line.startswith("study.run: error:")]
    assert len(refusal) == 1, loser.output[-3000:]
    assert f"pid {runner.proc.pid} on host" in refusal[0] and "since" in refusal[0], refusal[0]
    assert "Traceback" not in loser.output
    assert "Ray: " not in loser.output and "study d:" not in loser.output  # refused before Ray started
    return runner, loser


def wait_for_progress(study_dir, driver: Driver, before: dict[str, int]) -> None:
    moved = driver.wait_for_progress(study_dir, before)
    assert moved, "no new epoch while the driver ran: " + driver.output[-2000:]


@pytest.mark.long(minutes=2)
def test_one_driver_per_study_sigterm_and_a_sigkilled_drivers_lock(tmp_path):
    storage = tmp_path / "runs"
    study_dir = storage / "d"
    args = ["--storage", str(storage), "--name", "d", *TASK]

    # Two new drivers on one name: one runs the study, the other exits 2 naming it.
    runner, _ = pair(args, [tmp_path / "h1", tmp_path / "h2"])
    wait_for_progress(study_dir, runner, {})

    # SIGTERM, as a batch scheduler sends it ahead of the time limit: like Ctrl-C, exit 143 and the resume command.
    runner.proc.send_signal(signal.SIGTERM)
    assert runner.wait() == 143, runner.output[-3000:]
    assert re.search(r"interrupted \(SIGTERM\): binary has \d/2 trials finished", runner.output), runner.output[-2000:]
    assert "--resume --name d" in runner.output
    assert "running" not in set(load_trials(study_dir)["status"])
    assert not lock_path(storage, "d").exists()  # released

    # Two --resume drivers together: one continues, the other exits 2 naming it; then the one that runs is
    # SIGKILLed (no chance to release its lock).
    before = progress(study_dir)
    runner, _ = pair([*args, "--resume"], [tmp_path / "h3", tmp_path / "h4"])
    wait_for_progress(study_dir, runner, before)
    runner.proc.kill()
    runner.wait()
    kill_orphans(tmp_path / "h3")
    kill_orphans(tmp_path / "h4")
    assert lock_path(storage, "d").exists()
    time.sleep(3.5)  # the heartbeat lapses

    after_kill = progress(study_dir)
    final = start_driver([*args, "--resume"], tmp_path / "h5")
    assert final.wait() == 0, final.output[-3000:]
    assert "took over the study lock" in final.output and f"pid {runner.proc.pid}" in final.output
    assert "left 'running'" in final.output  # the killed driver's rows, repaired
    trials, _ = check_tables(study_dir, ("binary",), n_trials=2, epochs=5)
    assert "error" not in set(trials["status"])
    assert all(progress(study_dir)[t] >= e for t, e in after_kill.items())  # nothing lost
    assert len(list(study_dir.glob("binary/trial_*"))) == 2  # no extra trial
    assert not lock_path(storage, "d").exists()
    assert os.environ.get(ENV_HEARTBEAT) is None  # the settings stayed in the drivers' environment
