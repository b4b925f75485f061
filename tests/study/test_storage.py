"""Storage failures recognised in every form they reach the driver; the reserve, the journal repair, the estimate."""

from __future__ import annotations

import errno
import os
from dataclasses import replace

import pytest

from results.plan import StudyConfig
from study.faults import fill
from study.presets import FULL, SMOKE
from study.storage import (
    RESERVE_FILE,
    check_writable,
    estimate,
    make_reserve,
    release_reserve,
    repair_journal,
    storage_failure,
)
from tests.helpers.tmpfs import tmpfs


class FakeRayTaskError(Exception):
    """Ray's task error carries the original exception as ``cause``."""

    def __init__(self, text: str, cause: BaseException | None) -> None:
        super().__init__(text)
        self.cause = cause


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.ENOSPC, "no space left"),
        (errno.EDQUOT, "quota"),
        (errno.EROFS, "read-only"),
        (errno.EIO, "input/output"),
        (errno.ESTALE, "stale"),
    ],
)
def test_storage_errnos_are_failures_in_every_form(tmp_path, code, reason):
    raw = OSError(code, os.strerror(code), str(tmp_path / "tables" / ".x.tmp"))
    chained = RuntimeError("while writing the tables")
    chained.__cause__ = raw
    remote = FakeRayTaskError("ray::ImplicitFunc.train()", raw)
    text_only = FakeRayTaskError(f"OSError: [Errno {code}] {os.strerror(code)}", None)
    arrow_text = RuntimeError(f"Error writing bytes to file. Detail: [errno {code}] {os.strerror(code)}")
    for exc in (raw, chained, remote, text_only, arrow_text):
        failure = storage_failure(exc, tmp_path, tmp_path / "s")
        assert failure is not None, exc
        assert failure.errno == code
        assert reason in failure.line()
        assert str(tmp_path) in failure.line()
        assert "free" in failure.line()  # the free space, in the same line


def test_other_errors_are_not_storage_failures(tmp_path):
    study_dir = tmp_path / "s"
    study_dir.mkdir()
    for exc in (
        OSError(errno.EACCES, "Permission denied"),
        FileNotFoundError(errno.ENOENT, "No such file", str(study_dir / "x")),  # the study is still there
        ValueError("loss is NaN"),
        RuntimeError("CUDA out of memory"),
    ):
        assert storage_failure(exc, tmp_path, study_dir) is None, exc


def test_a_full_disk_elsewhere_is_not_the_studys_storage(tmp_path):
    other = OSError(errno.ENOSPC, "No space left on device", "/tmp/ray/session_x/artifacts/y")
    arrow = OSError(errno.EROFS, "Failed to open local file '/var/other/f'. Detail: [errno 30] Read-only file system")
    for exc in (other, arrow):
        assert storage_failure(exc, tmp_path / "runs", tmp_path / "runs" / "s") is None
    ours = OSError(errno.EROFS, f"Failed to open local file '{tmp_path}/runs/s/x'. Detail: [errno 30] Read-only")
    assert storage_failure(ours, tmp_path / "runs", tmp_path / "runs" / "s") is not None


def test_a_vanished_study_directory_is_a_storage_failure(tmp_path):
    exc = FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "gone" / "tables"))
    failure = storage_failure(exc, tmp_path, tmp_path / "gone")
    assert failure is not None
    assert "is gone" in failure.reason


def test_repair_journal_cuts_only_a_partial_last_line(tmp_path):
    journal = tmp_path / "binary.journal"
    whole = b'{"op_code": 0}\n{"op_code": 4}\n'
    journal.write_bytes(whole)
    assert repair_journal(journal) == 0
    assert journal.read_bytes() == whole
    journal.write_bytes(whole + b'{"op_code": 5, "trial_id": 1, "val')  # a full disk cut the last append
    assert repair_journal(journal) == len(b'{"op_code": 5, "trial_id": 1, "val')
    assert journal.read_bytes() == whole
    assert repair_journal(tmp_path / "missing.journal") == 0


def test_reserve_is_made_and_released(tmp_path):
    assert make_reserve(tmp_path, 100_000)
    assert (tmp_path / RESERVE_FILE).stat().st_size == 100_000
    assert release_reserve(tmp_path)
    assert not (tmp_path / RESERVE_FILE).exists()
    assert not release_reserve(tmp_path)


def _cfg(preset, tasks=("binary",), num_samples=None) -> StudyConfig:
    return StudyConfig(
        name="x", storage="/tmp", preset=preset.name, tasks=tasks, task_presets=preset.tasks, epochs=preset.epochs,
        num_samples=num_samples or preset.num_samples, max_concurrent=None, gpus_per_trial=preset.gpus_per_trial,
        cpus_per_trial=preset.cpus_per_trial, grace_period=preset.grace_period,
        reduction_factor=preset.reduction_factor, seed=0, metric="val_dice_fg",
    )  # fmt: skip


def test_estimate_scales_with_the_largest_network_trials_and_checkpoints_kept():
    smoke = estimate(_cfg(SMOKE), checkpoints_kept=2)
    # smoke binary: largest network base 8, depth 3 (112,969 parameters: 1.36 MB as fp32 weights + AdamW moments)
    per_checkpoint = 12 * 112_969 + 64 * 1024
    assert smoke.checkpoints == per_checkpoint * 4 * SMOKE.num_samples  # 2 best, the latest, one pinned
    assert estimate(_cfg(SMOKE), checkpoints_kept=4).checkpoints == per_checkpoint * 6 * SMOKE.num_samples
    assert estimate(_cfg(SMOKE, num_samples=8), 2).total > smoke.total
    full = estimate(_cfg(FULL, tasks=("binary", "multiclass")), 2)
    assert full.checkpoints > 10 * 1024**3  # base 32, depth 5 binary networks: gigabytes, and it says so
    assert "checkpoints" in full.describe() and "GiB" in full.describe()
    assert smoke.tables > 0 and smoke.ray_state > 0 and smoke.logs > 0


def test_check_writable_names_the_reason(tmp_path):
    assert check_writable(tmp_path / "new" / "dir") is None
    assert (tmp_path / "new" / "dir").is_dir()
    assert not list((tmp_path / "new" / "dir").iterdir())  # the probe is gone
    with tmpfs(tmp_path / "ro", "1m") as fs:
        fs.remount("ro")
        assert check_writable(fs.path) == "read-only file system"
        fs.remount("rw")
        assert fill(fs.path) > 0
        assert check_writable(fs.path) == "no space left on device"


def test_estimate_unaffected_by_data_size():
    """Checkpoints depend on the network, not on the rasters."""
    base = _cfg(SMOKE)
    bigger = replace(base, task_presets={t: replace(p, n_instances=10_000, scale=1.0) for t, p in SMOKE.tasks.items()})
    assert estimate(bigger, 2).checkpoints == estimate(base, 2).checkpoints
