"""The driver's own progress lines say what the tables say: statuses in their words, the best epoch theirs."""

from __future__ import annotations

import logging
import pickle
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from results.tables import StudyTables
from study.callbacks import restoring_with
from study.progress import TRIAL_STARTED, Progress, quiet_ray_advice, report_every


def _trial(tid: str, tmp_path):
    return SimpleNamespace(trial_id=tid, config={"loss": "bce", "base_channels": 4, "depth": 2, "lr": 0.0023},
                           path=str(tmp_path / f"trial_{tid}"), error_file=None)  # fmt: skip


def _record(tables: StudyTables, tid: str, status: str, values: list[float]) -> None:
    now = datetime.now(timezone.utc)
    common = dict(params={}, epoch_budget=6, devices=1.0, started_at=now, node="", checkpoint_path=None)
    tables.record_trial(tid, "binary", status="running", finished_at=None, **common)
    for epoch, value in enumerate(values, start=1):
        tables.record_epoch(tid, "binary", epoch, {"val_dice_fg": value, "epoch_seconds": 1.0})
    tables.record_trial(tid, "binary", status=status, finished_at=now, **common)


def test_lines_follow_the_tables(tmp_path, capsys):
    tables = StudyTables(tmp_path / "tables", "s", "val_dice_fg")
    progress = Progress(tables, "binary", 6)
    a, b = _trial("aaaa1111", tmp_path), _trial("bbbb2222", tmp_path)
    progress.on_trial_start(0, [], a)
    for epoch in range(1, 7):
        progress.on_trial_result(0, [], a, {"epoch": epoch, "val_dice_fg": 0.1 * epoch})
    _record(tables, "aaaa1111", "completed", [0.1, 0.2, 0.3, 0.6, 0.5, 0.4])  # best at epoch 4, not the last
    progress.on_trial_complete(0, [], a)
    _record(tables, "bbbb2222", "stopped_early", [0.05])
    progress.on_trial_complete(0, [], b)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"binary trial aaaa1111{TRIAL_STARTED}loss bce, base_channels 4, depth 2, lr 0.0023)"
    assert [line for line in lines if ": epoch " in line] == [
        "binary trial aaaa1111: epoch 2/6, val_dice_fg 0.2000",
        "binary trial aaaa1111: epoch 4/6, val_dice_fg 0.4000",
    ]  # every report_every(6) = 2 epochs, the last one said by the closing line
    assert lines[-2] == "binary trial aaaa1111: completed 6/6 epochs; best val_dice_fg 0.6000 at epoch 4"
    assert lines[-1] == "binary trial bbbb2222: stopped early by ASHA after epoch 1; best val_dice_fg 0.0500 at epoch 1"


def test_a_restored_progress_writes_with_the_drivers_tables(tmp_path):
    tables = StudyTables(tmp_path / "tables", "s", "val_dice_fg")
    saved = pickle.dumps(Progress(tables, "binary", 6))
    with restoring_with(tables):
        assert pickle.loads(saved).tables is tables


@pytest.mark.parametrize("epochs", [1, 2, 6, 50])
def test_report_every_gives_about_three_lines(epochs):
    every = report_every(epochs)
    assert every >= 1 and len(range(every, epochs, every)) <= 3


def test_rays_wrong_advice_is_dropped_and_other_lines_kept(caplog):
    auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
    tune = logging.getLogger("ray.tune.tune")
    with caplog.at_level(logging.WARNING), quiet_ray_advice():
        auth.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out.")
        tune.warning("Experiment has been interrupted, but the most recent state was saved.\nResume experiment with: x")
        tune.warning("something else worth knowing")
    assert [r.getMessage() for r in caplog.records] == ["something else worth knowing"]
    with caplog.at_level(logging.WARNING):
        auth.warning("Token authentication is enabled")  # outside: as Ray has it
    assert caplog.records[-1].getMessage() == "Token authentication is enabled"


def test_on_a_terminal_a_live_line_follows_the_events(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Progress, "live", property(lambda self: True))
    tables = StudyTables(tmp_path / "tables", "s", "val_dice_fg")
    progress = Progress(tables, "binary", 6)
    _record(tables, "aaaa1111", "completed", [0.1, 0.2, 0.3, 0.6, 0.5, 0.4])
    progress.on_trial_complete(0, [], _trial("aaaa1111", tmp_path))
    _record(tables, "bbbb2222", "stopped_early", [0.05])
    progress.on_trial_complete(0, [], _trial("bbbb2222", tmp_path))
    progress.on_experiment_end([])
    out = capsys.readouterr().out
    assert out.startswith("\r\033[Kbinary trial aaaa1111: completed 6/6 epochs")
    live = "binary: 1 completed, 1 stopped early; best 0.6000 (trial aaaa1111, epoch 4)"
    assert out.endswith(f"\r\033[K{live}\n")  # the last live line stays, on a line of its own
