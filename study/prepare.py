"""Preparing a study before any trial runs, under its lock: a new one created, a resumed one checked and
repaired, the free space looked at. Every refusal is a ``UsageError`` (one line, exit status 2)."""

from __future__ import annotations

import shutil
import sys

from ray import tune

from datamodules.cli import Exit, UsageError
from results.plan import STUDY_FILE, StudyConfig
from results.store import child, shown
from results.tables import StudyTables
from study.lock import Lock, LockHeld
from study.search import journal_path
from study.state import DamagedState, check_before_restore, newest_set
from study.storage import (
    check_writable,
    estimate,
    free_bytes,
    free_text,
    human,
    repair_journal,
    storage_failure,
    used_bytes,
)
from study.tuner import CHECKPOINTS_KEPT, experiment


def check_fits(cfg: StudyConfig, resources: dict[str, float]) -> None:
    for kind, flag, need in (
        ("GPU", "--gpus-per-trial", cfg.gpus_per_trial),
        ("CPU", "--cpus-per-trial", cfg.cpus_per_trial),
    ):
        have = resources.get(kind, 0.0)
        if need > have:
            hint = " or --preset smoke" if kind == "GPU" else ""
            raise UsageError(f"a trial needs {need:g} {kind} but this machine has {have:g}; lower {flag}{hint}")


def create_study(cfg: StudyConfig) -> None:
    try:
        cfg.study_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:  # created since parse() looked: another driver, now finished
        raise UsageError(
            f"study {cfg.name!r} already exists in {cfg.storage}; use --resume to continue it, or choose another --name"
        ) from None
    tmp = cfg.study_dir / f".{STUDY_FILE}.tmp"
    try:
        tmp.write_text(cfg.to_json())
        tmp.replace(cfg.study_dir / STUDY_FILE)
    except OSError:  # e.g. a full disk: leave no half-made study behind
        shutil.rmtree(cfg.study_dir, ignore_errors=True)
        raise


def acquire(lock: Lock) -> None:
    """Take the study lock before anything is written or restored; UsageError naming the holder, or saying why
    the storage cannot take the lock file (the pre-flight writability check of a new study)."""
    try:
        lock.acquire()
    except LockHeld as exc:
        raise UsageError(f"{exc}; wait for it to end or stop it (Ctrl-C or SIGTERM), then try again") from None
    except OSError as exc:
        failure = storage_failure(exc, lock.storage)
        reason = failure.reason if failure else exc.strerror or str(exc)
        if isinstance(lock.storage, str):  # object storage
            raise UsageError(
                f"--storage {shown(lock.storage)} cannot take the study lock ({reason}); check the store, the "
                "bucket's permissions and the credentials"
            ) from None
        raise UsageError(
            f"--storage {lock.storage} is not writable ({reason}, {free_text(lock.storage)}); "
            "free space, fix the storage or choose another directory"
        ) from None
    if lock.takeover:
        print(f"study.run: {lock.takeover}", file=sys.stderr)


def prepare_resume(cfg: StudyConfig, tables: StudyTables) -> None:
    """Under the lock, before Ray starts: the study must take writes; rows an earlier driver left ``running``
    become ``interrupted``; a journal's cut last line is removed; Ray's damaged state falls back to its last
    good copy (UsageError when there is none: nothing is run)."""
    reason = check_writable(cfg.study_dir)
    if reason is not None:
        raise UsageError(
            f"the study {cfg.study_dir} is not writable ({reason}, {free_text(cfg.study_dir)}); "
            "free space or fix the storage, then resume again"
        )
    for task in cfg.tasks:  # first what may refuse the resume, then the repairs
        try:
            note = check_before_restore(cfg.study_dir / task)
        except DamagedState as exc:
            raise UsageError(str(exc)) from None
        if note:
            print(f"study.run: {note}", file=sys.stderr)
        exp_path, fs = experiment(cfg, task)
        restorable = tune.Tuner.can_restore(exp_path, storage_filesystem=fs) and (
            fs is not None or newest_set(cfg.study_dir / task)
        )
        if tables.trial_ids(task) and not restorable:
            raise UsageError(
                f"{child(cfg.study_location, task)} holds no experiment state of Ray's, but the tables hold {task} "
                "trials: "
                "resuming would start a fresh experiment under this study; nothing was run. Put back a backup of "
                "that directory, or start the study again under a new --name"
            )
    for task in cfg.tasks:
        repair_journal(journal_path(cfg.study_dir, task))
    stale = tables.interrupt_running()
    if stale:
        print(
            f"study.run: trials {', '.join(stale)} were left 'running' by a driver that stopped without saying so; "
            "marked interrupted",
            file=sys.stderr,
        )


def preflight(cfg: StudyConfig) -> None:
    """Warn, with the figures, when the storage has less free space than the study may still write (a disk;
    an object store's quota is its own and not known here)."""
    if cfg.remote:
        return
    plan = estimate(cfg, CHECKPOINTS_KEPT)
    need = max(0, plan.total - used_bytes(cfg.study_dir))
    free = free_bytes(cfg.study_dir)
    if free is not None and free < need:
        print(
            f"study.run: warning: {cfg.storage} has {human(free)} free, less than this study may still write "
            f"({plan.describe()}); if it fills, the study stops (exit {Exit.STORAGE:d}) and --resume continues it "
            "once there is room",
            file=sys.stderr,
        )
