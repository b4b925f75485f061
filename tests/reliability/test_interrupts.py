"""Interrupted drivers: repeated Ctrl-C at random moments, then --resume. (A SIGKILLed driver, then --resume,
is in ``test_drivers``, with its lock taken over.)

These tests assert the work done and lost (epochs re-run, trials restarted), never wall time: what an
interrupt costs in seconds is measured side by side by ``python -m bench.interrupts``.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter

import pytest

from tests.helpers.driver import Driver, progress
from tests.helpers.study import check_tables, reported_epochs, study

pytestmark = pytest.mark.slow

TASK = ["--task", "binary", "--num-samples", "2", "--epochs", "4", "--instances", "24", "--scale", "0.08"]
TINY_CPU = ["--no-dashboard", "--no-report", "--cpus-per-trial", "1", "--max-concurrent", "2"]


@pytest.mark.long(minutes=3)
def test_repeated_random_interrupts_lose_at_most_an_epoch_per_interrupt(tmp_path):
    rng = random.Random(20261128)
    storage = tmp_path / "runs"
    study_dir = storage / "rough"
    first = ["--storage", str(storage), "--name", "rough", *TASK, *TINY_CPU]
    again = [*first, "--resume"]  # the up-arrow habit: the same command plus --resume
    seen: dict[str, int] = {}
    interrupts = 0
    code = None
    for attempt in range(3):  # at least 2 interrupts, each after some new work, then --resume finishes
        driver = Driver(first if attempt == 0 else again, tmp_path / "h2")
        # At a random moment within the epoch after this driver's first new one: every run does some work.
        if driver.wait_for_progress(study_dir, seen):
            time.sleep(rng.uniform(0.0, 1.5))
            driver.proc.send_signal(signal.SIGINT)
        code = driver.wait(300)
        assert code in (0, 130), driver.output[-3000:]
        interrupts += code == 130  # a signal after the study ended stops nothing (exit 0)
        now = progress(study_dir)
        for trial, epoch in seen.items():  # progress never goes backwards
            assert now.get(trial, 0) >= epoch, (trial, epoch, now)
        seen = now
        if code == 0:
            break
    if code != 0:
        final = study(again, tmp_path / "h2")
        assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]

    assert interrupts >= 2
    trials, _ = check_tables(study_dir, ("binary",), n_trials=2, epochs=4)
    for trial_id in trials["trial_id"]:
        epochs = reported_epochs(study_dir, "binary", str(trial_id))
        counts = Counter(epochs)
        rerun = sum(n - 1 for n in counts.values())
        print(f"\ntrial {trial_id}: interrupts={interrupts} reported epochs {epochs} (re-run {rerun})")
        assert counts[1] == 1, f"trial {trial_id} was restarted from scratch: {epochs}"
        assert rerun <= interrupts, f"trial {trial_id} re-ran {rerun} epochs for {interrupts} interrupts: {epochs}"
        assert max(epochs) == trials.set_index("trial_id").loc[trial_id, "epochs_completed"]
