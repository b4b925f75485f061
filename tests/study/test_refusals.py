"""Refusals that need no Ray answer before Ray starts: a plan this machine cannot run, a finished study on
--resume, a storage path with a missing parent; an interrupt before the study exists says nothing was started."""

from __future__ import annotations

import signal
import time
from datetime import datetime, timezone

import pytest
import ray

from results.tables import StudyTables
from study.run import main
from tests.helpers.driver import Driver
from tests.helpers.study import TINY, env_for, saved_study


def test_a_plan_this_machine_cannot_run_is_refused_before_ray_starts(tmp_path, capsys):
    storage = tmp_path / "runs"
    assert main(["--preset", "full", "--name", "f", "--storage", str(storage), "--no-dashboard"]) == 2
    err = capsys.readouterr().err
    assert "a trial needs 1 GPU but this machine has 0" in err and err.count("\n") == 1
    assert not ray.is_initialized()
    assert not (storage / "f").exists()


def test_a_storage_path_whose_parent_does_not_exist_is_refused(tmp_path, capsys):
    typo = tmp_path / "scartch" / "runs"
    assert main(["--storage", str(typo), "--name", "s", "--no-dashboard"]) == 2
    err = capsys.readouterr().err
    assert f"its parent folder {typo.parent} does not exist" in err and "mkdir -p" in err
    assert not typo.parent.exists()
    assert not ray.is_initialized()


def test_resuming_a_finished_study_says_so_without_starting_ray(tmp_path, capsys):
    cfg = saved_study(tmp_path, num_samples=1)
    tables = StudyTables(cfg.tables_dir, cfg.name, cfg.metric)
    now = datetime.now(timezone.utc)
    tables.record_trial(
        "t1", "binary", status="running", params={"lr": 1e-3}, epoch_budget=cfg.epochs, devices=1.0,
        started_at=now, finished_at=None, node="", checkpoint_path=None,
    )  # fmt: skip
    for epoch in range(1, cfg.epochs + 1):
        tables.record_epoch("t1", "binary", epoch, {"val_dice_fg": 0.1 * epoch, "epoch_seconds": 1.0})
    tables.record_trial(
        "t1", "binary", status="completed", params={"lr": 1e-3}, epoch_budget=cfg.epochs, devices=1.0,
        started_at=now, finished_at=now, node="", checkpoint_path=None,
    )  # fmt: skip
    assert main(["--resume", "--name", cfg.name, "--storage", cfg.storage, "--no-dashboard"]) == 0
    out = capsys.readouterr().out
    assert f"study {cfg.name} has finished: every planned trial has run; nothing to resume" in out
    assert "best binary: trial t1 val_dice_fg=0.4000 at epoch 4" in out
    assert not ray.is_initialized()


@pytest.mark.slow
def test_an_interrupt_while_ray_starts_says_nothing_was_started(tmp_path):
    storage = tmp_path / "runs"
    driver = Driver(["--storage", str(storage), "--name", "early", *TINY], tmp_path, env=env_for(tmp_path / "home"))
    lock = storage / ".early.lock"
    deadline = time.monotonic() + 60
    while not lock.exists() and driver.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.exists(), driver.output
    driver.proc.send_signal(signal.SIGINT)  # the lock is taken; Ray takes seconds to start
    code = driver.proc.wait(timeout=120)
    out = driver.output
    assert code == 130, out
    assert "nothing was started" in out and "--resume" not in out
    assert not (storage / "early").exists()
