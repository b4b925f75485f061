"""The study lock: exclusive across processes, named holder, heartbeat, takeover of a lock whose driver is gone."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time

import pytest

from study.lock import ENV_HEARTBEAT, ENV_LAPSE, LockHeld, StudyLock, current_holder, lock_path
from tests.helpers.study import REPO


@pytest.fixture
def fast_heartbeat(monkeypatch):
    monkeypatch.setenv(ENV_HEARTBEAT, "0.2")
    monkeypatch.setenv(ENV_LAPSE, "1.5")


def test_one_holder_named_to_the_next(tmp_path, fast_heartbeat):
    first = StudyLock(tmp_path / "runs", "s")
    first.acquire()
    try:
        second = StudyLock(tmp_path / "runs", "s")
        with pytest.raises(LockHeld) as info:
            second.acquire()
        message = str(info.value)
        assert f"pid {os.getpid()}" in message and "on host" in message and "since" in message
        assert str(lock_path(tmp_path / "runs", "s")) in message
        assert current_holder(tmp_path / "runs", "s") is not None
        assert StudyLock(tmp_path / "runs", "other").acquire() is None  # another study: its own lock
    finally:
        first.release()
    assert not lock_path(tmp_path / "runs", "s").exists()
    assert current_holder(tmp_path / "runs", "s") is None


def test_heartbeat_keeps_the_lock_fresh(tmp_path, fast_heartbeat):
    lock = StudyLock(tmp_path, "s")
    lock.acquire()
    try:
        path = lock_path(tmp_path, "s")
        os.utime(path, (time.time() - 100, time.time() - 100))
        deadline = time.monotonic() + 10
        while time.time() - path.stat().st_mtime > 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert time.time() - path.stat().st_mtime < 50  # touched again
    finally:
        lock.release()


def _foreign_lock(tmp_path, age: float, host: str = "elsewhere") -> None:
    """A lock left by a driver on another host whose last heartbeat was ``age`` seconds ago."""
    path = lock_path(tmp_path, "s")
    holder = {
        "host": host, "pid": 4242, "boot_id": "x", "process_started": 0.0, "since": "2026-11-28T10:00:00+00:00",
        "token": "feedfeed", "heartbeat_s": 0.2, "lapse_s": 1.5, "command": "python -m study.run",
    }  # fmt: skip
    path.write_text(json.dumps(holder))
    os.utime(path, (time.time() - age, time.time() - age))


def test_a_lapsed_heartbeat_is_taken_over_and_said(tmp_path, fast_heartbeat):
    _foreign_lock(tmp_path, age=60)
    lock = StudyLock(tmp_path, "s")
    lock.acquire()
    try:
        assert lock.takeover is not None
        assert "pid 4242 on host elsewhere" in lock.takeover and "lapsed" in lock.takeover
        assert json.loads(lock_path(tmp_path, "s").read_text())["pid"] == os.getpid()
    finally:
        lock.release()


def test_a_fresh_foreign_heartbeat_is_refused_and_a_stopped_one_waited_for(tmp_path, fast_heartbeat):
    _foreign_lock(tmp_path, age=0)
    with pytest.raises(LockHeld, match="pid 4242 on host elsewhere"):
        StudyLock(tmp_path, "s").acquire()
    _foreign_lock(tmp_path, age=0.8)  # older than two beats, younger than the lapse: its driver has stopped
    with pytest.raises(LockHeld, match="taken over once"):
        StudyLock(tmp_path, "s").acquire(wait=False)
    lock = StudyLock(tmp_path, "s")
    lock.acquire()  # waits for the lapse, then takes over
    try:
        assert "lapsed" in lock.takeover
    finally:
        lock.release()


def test_a_dead_holder_on_this_host_is_taken_over_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_HEARTBEAT, "30")
    monkeypatch.setenv(ENV_LAPSE, "600")
    code = f"from study.lock import StudyLock; StudyLock({str(tmp_path)!r}, 's').acquire(); import os; os._exit(0)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)  # acquires and dies without releasing
    assert lock_path(tmp_path, "s").exists()
    lock = StudyLock(tmp_path, "s")
    lock.acquire()
    try:
        assert "process is gone" in lock.takeover
    finally:
        lock.release()


def test_a_driver_whose_lock_was_taken_over_knows(tmp_path, fast_heartbeat):
    lock = StudyLock(tmp_path, "s")
    lock.acquire()
    try:
        _foreign_lock(tmp_path, age=0)  # another driver took it over while this one was stalled
        assert lock.lost.wait(5)
    finally:
        lock.release()
    assert lock_path(tmp_path, "s").exists()  # release never deletes another driver's lock


def test_release_removes_the_storage_directories_it_created_if_empty(tmp_path, fast_heartbeat):
    lock = StudyLock(tmp_path / "a" / "b", "s")
    lock.acquire()
    lock.release()
    assert not (tmp_path / "a").exists()


def _race(storage: str, start: float, results) -> None:
    time.sleep(max(0.0, start - time.time()))
    try:
        lock = StudyLock(storage, "s")
        lock.acquire(wait=False)
        results.put(("won", os.getpid()))
        time.sleep(1.0)
        lock.release()
    except LockHeld as exc:
        results.put(("held", str(exc)))


def test_drivers_started_together_get_one_lock(tmp_path, fast_heartbeat):
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    start = time.time() + 0.5
    procs = [ctx.Process(target=_race, args=(str(tmp_path), start, results)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = [results.get(timeout=5) for _ in procs]
    assert sum(kind == "won" for kind, _ in outcomes) == 1, outcomes
    winner = next(pid for kind, pid in outcomes if kind == "won")
    assert all(f"pid {winner}" in text for kind, text in outcomes if kind == "held")


def test_bad_heartbeat_settings_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_HEARTBEAT, "5")
    monkeypatch.setenv(ENV_LAPSE, "2")
    with pytest.raises(ValueError, match=ENV_LAPSE):
        StudyLock(tmp_path, "s")
    monkeypatch.setenv(ENV_HEARTBEAT, "soon")
    with pytest.raises(ValueError, match=ENV_HEARTBEAT):
        StudyLock(tmp_path, "s")


def test_a_takeover_that_died_half_way_does_not_block_the_next(tmp_path, fast_heartbeat):
    _foreign_lock(tmp_path, age=60)
    guard = lock_path(tmp_path, "s").with_name(".s.lock.takeover")
    guard.write_text(lock_path(tmp_path, "s").read_text())
    os.utime(guard, (time.time() - 60, time.time() - 60))
    lock = StudyLock(tmp_path, "s")
    lock.acquire()
    try:
        assert "lapsed" in lock.takeover
        assert not guard.exists()
    finally:
        lock.release()
