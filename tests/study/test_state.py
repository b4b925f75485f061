"""Ray's experiment state: the last good copy, the check before a restore, and the refusal to run a fresh
experiment under a study that already has trials. Fabricated state files, no Ray run."""

from __future__ import annotations

import pickle

import pytest

from results.tables import StudyTables
from study.callbacks import StateNotRestored, TablesCallback, restoring_with
from study.state import (
    DAMAGED_DIR,
    GOOD_DIR,
    DamagedState,
    StateKeeper,
    check_before_restore,
    damage,
    good_copy,
)
from tests.helpers.state import S1, S2, cut, write_state


def test_damage_recognises_cut_files_without_running_them(tmp_path):
    files = write_state(tmp_path, S1)
    for name in files:
        assert damage(tmp_path / name) is None, name
    for name in files:
        cut(tmp_path / name)
        assert damage(tmp_path / name) is not None, name
    (tmp_path / "empty.json").write_bytes(b"")
    assert damage(tmp_path / "empty.json") == "empty"


def test_snapshot_keeps_the_newest_whole_set_and_skips_a_cut_one(tmp_path):
    exp = tmp_path / "binary"
    files = write_state(exp, S1)
    keeper = StateKeeper(exp)
    assert keeper.snapshot()
    assert not keeper.snapshot()  # nothing changed
    good = good_copy(exp)
    assert good is not None
    assert {n: p.read_bytes() for n, p in good.items()} == files
    write_state(exp, S2, trials=3)
    cut(exp / f"experiment_state-{S2}.json")  # Ray's copy was cut short: the good copy stays at S1
    assert not keeper.snapshot()
    assert f"experiment_state-{S1}.json" in good_copy(exp)
    write_state(exp, S2, trials=3)  # a later save went through
    assert keeper.snapshot()
    assert f"experiment_state-{S2}.json" in good_copy(exp)
    assert sorted(p.name for p in exp.iterdir() if p.name.startswith(".state")) == [GOOD_DIR]


def test_restore_check_falls_back_to_the_good_copy(tmp_path):
    exp = tmp_path / "binary"
    files = write_state(exp, S1)
    StateKeeper(exp).snapshot()
    write_state(exp, S2, trials=3)  # the next session's save was cut short by a full disk
    cut(exp / f"experiment_state-{S2}.json")
    note = check_before_restore(exp)
    assert note is not None
    assert f"experiment_state-{S2}.json is damaged" in note and "restored the last good copy" in note
    # Ray restores the newest state by name: that is the good one now, and the damaged files are kept aside.
    states = sorted(p.name for p in exp.glob("experiment_state-*.json"))
    assert states == [f"experiment_state-{S1}.json"]
    assert {n: (exp / n).read_bytes() for n in files} == files
    aside = next((exp / DAMAGED_DIR).iterdir())
    assert f"experiment_state-{S2}.json" in {p.name for p in aside.iterdir()}
    assert check_before_restore(exp) is None  # whole now


def test_restore_check_without_a_good_copy_names_the_file_and_what_to_do(tmp_path):
    exp = tmp_path / "binary"
    write_state(exp, S1)
    cut(exp / f"experiment_state-{S1}.json")
    before = sorted(p.name for p in exp.iterdir())
    with pytest.raises(DamagedState) as info:
        check_before_restore(exp)
    message = str(info.value)
    assert f"experiment_state-{S1}.json is damaged" in message
    assert "no good copy" in message and "nothing was run" in message and "--name" in message
    assert sorted(p.name for p in exp.iterdir()) == before  # left as it was


def test_restore_check_leaves_a_whole_state_and_an_empty_directory_alone(tmp_path):
    exp = tmp_path / "binary"
    assert check_before_restore(exp) is None
    write_state(exp, S1)
    assert check_before_restore(exp) is None
    assert not (exp / DAMAGED_DIR).exists()


def test_a_good_copy_survives_a_crash_in_the_middle_of_its_swap(tmp_path):
    exp = tmp_path / "binary"
    write_state(exp, S1)
    StateKeeper(exp).snapshot()
    (exp / GOOD_DIR).rename(exp / f"{GOOD_DIR}.new")  # killed between the two renames
    assert good_copy(exp) is not None


def test_ray_starting_a_fresh_experiment_under_a_study_with_trials_is_refused(tmp_path):
    tables = StudyTables(tmp_path / "s" / "tables", "s", "val_dice_fg")
    callback = TablesCallback(tables, "binary", 2, 1.0)
    callback.on_step_begin(0, [])  # a new study: nothing in the tables, a fresh start is right
    tables.record_trial(
        "t1", "binary", status="running", params={}, epoch_budget=2, devices=1.0, started_at=None,
        finished_at=None, node="", checkpoint_path=None,
    )  # fmt: skip
    with pytest.raises(StateNotRestored, match="fresh, empty experiment"):
        TablesCallback(tables, "binary", 2, 1.0).on_step_begin(0, [])  # a run that should have restored t1


def test_the_callback_ray_restores_writes_to_the_tables_the_driver_hands_down(tmp_path):
    tables = StudyTables(tmp_path / "s" / "tables", "s", "val_dice_fg")
    saved = pickle.dumps(TablesCallback(tables, "binary", 2, 1.0))  # it lives in Ray's tuner.pkl
    with restoring_with(tables):
        restored = pickle.loads(saved)
    assert restored.task == "binary" and restored.tables is tables
    with pytest.raises(RuntimeError, match="no tables"):
        pickle.loads(saved)  # unpickled outside a restore: said, never a writer of its own


def test_checkpoints_the_good_copy_names_come_back_after_ray_deleted_them(tmp_path):
    exp = tmp_path / "binary"
    write_state(exp, S1)
    ckpt = exp / "trial_a" / "checkpoint_000001"
    ckpt.mkdir(parents=True)
    (ckpt / "checkpoint.ckpt").write_bytes(b"weights" * 100)
    StateKeeper(exp).snapshot()
    assert (exp / GOOD_DIR / "checkpoints" / "trial_a" / "checkpoint_000001" / "checkpoint.ckpt").stat().st_nlink == 2
    # Ray registers newer checkpoints and deletes this one; then its state saves stop (a killed driver)
    for path in ckpt.iterdir():
        path.unlink()
    ckpt.rmdir()
    note = check_before_restore(exp)
    assert note is not None and "put back 1 checkpoint " in note
    assert (ckpt / "checkpoint.ckpt").read_bytes() == b"weights" * 100
    # ... or the next save was cut short: the good copy comes back with the checkpoint
    for path in ckpt.iterdir():
        path.unlink()
    ckpt.rmdir()
    write_state(exp, S2)
    cut(exp / f"experiment_state-{S2}.json")
    note = check_before_restore(exp)
    assert "restored the last good copy" in note and "with 1 checkpoint " in note
    assert (ckpt / "checkpoint.ckpt").read_bytes() == b"weights" * 100
