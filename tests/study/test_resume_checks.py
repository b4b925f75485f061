"""What a driver refuses before Ray starts (exit 2, one line, nothing run): a damaged Ray state with no good copy,
a study whose tables hold trials Ray has no state for, a read-only storage; and the pre-flight space warning."""

from __future__ import annotations

import json
from dataclasses import replace

from results.plan import StudyConfig
from study.prepare import preflight
from study.presets import SMOKE
from study.run import main
from study.state import DAMAGED_DIR
from tests.helpers import study as study_helpers
from tests.helpers.state import S1, cut, write_state
from tests.helpers.tmpfs import tmpfs


def saved_study(tmp_path, with_trial: bool = True):
    return study_helpers.saved_study(tmp_path, with_trial=with_trial, num_samples=2)


def resume(cfg, capsys) -> tuple[int, str]:
    code = main(["--storage", cfg.storage, "--name", cfg.name, "--resume", "--no-dashboard"])
    return code, capsys.readouterr().err


def test_damaged_state_without_a_good_copy_exits_2_naming_the_file(tmp_path, home, capsys):
    cfg = saved_study(tmp_path)
    write_state(cfg.study_dir / "binary", S1)
    cut(cfg.study_dir / "binary" / f"experiment_state-{S1}.json")  # as the full disk left it
    before = sorted(p.name for p in (cfg.study_dir / "binary").iterdir())
    code, err = resume(cfg, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"experiment_state-{S1}.json is damaged" in lines[0] and "no good copy" in lines[0]
    assert "new --name" in lines[0] and "Traceback" not in err
    assert sorted(p.name for p in (cfg.study_dir / "binary").iterdir()) == before
    assert not (cfg.study_dir / "binary" / DAMAGED_DIR).exists()
    assert not (home / ".ray").exists()  # Ray never started
    assert not (tmp_path / "runs" / ".x.lock").exists()  # the lock was released


def test_trials_without_any_ray_state_are_not_run_afresh(tmp_path, home, capsys):
    cfg = saved_study(tmp_path)
    code, err = resume(cfg, capsys)
    assert code == 2
    assert "holds no experiment state" in err and "fresh experiment" in err
    assert not (home / ".ray").exists()


def test_a_read_only_storage_is_refused_before_ray_starts(tmp_path, home, capsys):
    with tmpfs(tmp_path / "ro", "1m") as fs:
        fs.remount("ro")
        code = main(["--storage", str(fs.path / "runs"), "--name", "n", "--no-dashboard"])
        err = capsys.readouterr().err
    assert code == 2
    assert "not writable (read-only file system" in err and " free" in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (home / ".ray").exists()


def test_preflight_warns_with_the_figures_when_space_is_short(tmp_path, capsys):
    presets = dict(SMOKE.tasks)
    cfg = StudyConfig(
        name="x", storage=str(tmp_path / "small" / "runs"), preset="smoke", tasks=("binary",), task_presets=presets,
        epochs=6, num_samples=4, max_concurrent=None, gpus_per_trial=0.0, cpus_per_trial=1.0, grace_period=1,
        reduction_factor=2, seed=0, metric="val_dice_fg",
    )  # fmt: skip
    with tmpfs(tmp_path / "small", "700k"):
        preflight(cfg)
    err = capsys.readouterr().err
    assert "warning:" in err and "KiB free, less than this study may still write" in err
    assert "checkpoints" in err and "MiB" in err
    preflight(replace(cfg, storage=str(tmp_path / "big")))  # plenty of room: silent
    assert capsys.readouterr().err == ""


def test_lock_file_holds_who_runs_the_study(tmp_path):
    from study.lock import StudyLock, lock_path

    lock = StudyLock(tmp_path, "x")
    lock.acquire()
    try:
        held = json.loads(lock_path(tmp_path, "x").read_text())
        assert {"host", "pid", "since", "token", "heartbeat_s", "lapse_s", "command"} <= set(held)
    finally:
        lock.release()
