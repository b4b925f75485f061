"""The study's storage: which errors mean it cannot take writes, its free space, what a study will write on it
(the pre-flight estimate), a small reserve for the final table writes, and the Optuna journal's repair.

A storage failure is an ``OSError`` whose errno says the storage, not the program, is at fault: no space
(ENOSPC), over quota (EDQUOT), read-only (EROFS), an I/O error (EIO), a stale NFS handle (ESTALE), or a study
directory that vanished (ENOENT once the directory is gone); or, for a study in object storage, an error of
the store (unreachable, access denied, over quota: pyarrow's "AWS Error KIND", the lock's error codes). It may
reach the driver directly (the tables, the Optuna journal), inside a trial's error (a checkpoint, Lightning's
log), or through Ray's own logging (its experiment state copy, checkpoint deletion); ``storage_failure``
recognises it in each form.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from models.unet_shape import task_parameter_count

if TYPE_CHECKING:
    from results.plan import StudyConfig

log = logging.getLogger(__name__)

# Keyed by errno; an OSError's errno may be None (looked up, never found).
REASONS: dict[int | None, str] = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error",
    errno.ESTALE: "stale file handle (the storage went away)",
}
VANISHED = (errno.ENOENT, errno.ENOTDIR)
# "[Errno 28]" (Python) or "[errno 28]" (Arrow) in the text of an error whose exception did not travel.
_ERRNO_TEXT = re.compile(r"\[[Ee]rrno (\d+)\]")
_QUOTED_PATH = re.compile(r"'(/[^']+)'")  # Arrow names the file in quotes
# pyarrow's S3 errors ("AWS Error NETWORK_CONNECTION during PutObject operation") and the lock's (study.object_lock)
_STORE_ERROR = re.compile(r"AWS Error ([A-Z_]+)|object store error (\w+)")
STORE_REASONS = {
    "NETWORK_CONNECTION": "the object store cannot be reached",
    "EndpointConnectionError": "the object store cannot be reached",
    "ConnectTimeoutError": "the object store cannot be reached",
    "ReadTimeoutError": "the object store did not answer",
    "ACCESS_DENIED": "access denied by the object store",
    "AccessDenied": "access denied by the object store",
    "INVALID_ACCESS_KEY_ID": "the object store does not know the access key",
    "InvalidAccessKeyId": "the object store does not know the access key",
    "SIGNATURE_DOES_NOT_MATCH": "the object store refused the credentials",
    "NO_SUCH_BUCKET": "the bucket does not exist",
    "NoSuchBucket": "the bucket does not exist",
    "QuotaExceeded": "over the object store's quota",
    "SERVICE_UNAVAILABLE": "the object store is unavailable",
    "SLOW_DOWN": "the object store is throttling requests",
    "INTERNAL_FAILURE": "the object store failed",
}
_SHOWN: dict[str, str] = {}  # a driver's local working copy -> the object store location it stands for
RESERVE_FILE = ".reserve"
RESERVE_MIN = 64 * 1024
CHECKPOINT_OVERHEAD = 64 * 1024  # Lightning's loop state, hyperparameters, pickling


class StorageFailure(Exception):
    """The study's storage cannot take writes: the study stops cleanly and ``--resume`` continues it."""

    def __init__(self, storage: Path | str, reason: str, code: int, filename: str | None = None) -> None:
        self.storage: Path | str = _SHOWN.get(str(storage), storage)
        self.reason = reason
        self.errno = code
        self.filename = filename
        remote = isinstance(self.storage, str) and "://" in self.storage
        self.free = None if remote else free_text(Path(self.storage))  # when it failed
        super().__init__(self.line())

    def line(self) -> str:
        where = f" (writing {self.filename})" if self.filename else ""
        if self.free is None:
            return f"{self.storage}: {self.reason}{where}"
        code = errno.errorcode.get(self.errno, self.errno)
        return f"{self.storage}: {self.reason} ({code}){where}, {self.free} when it failed"


def stands_for(local: Path, location: str) -> None:
    """Name storage failures of the driver's working copy ``local`` after the object store ``location``."""
    _SHOWN[str(local)] = location


def _store_failure(text: str, storage: Path | str) -> StorageFailure | None:
    match = _STORE_ERROR.search(text)
    if match is None:
        return None
    kind = match.group(1) or match.group(2)
    return StorageFailure(storage, STORE_REASONS.get(kind, f"the object store failed ({kind})"), errno.EIO)


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the file system that holds ``path`` (None if unknown)."""
    for candidate in (Path(path), *Path(path).parents):
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return None


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def free_text(path: Path) -> str:
    free = free_bytes(path)
    return "free space unknown" if free is None else f"{human(free)} free"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and a Ray task error's cause, each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]


def _under(filename: str | os.PathLike[str], storage: Path | str) -> bool:
    try:
        return Path(os.path.abspath(filename)).is_relative_to(Path(os.path.abspath(storage)))
    except (TypeError, ValueError):
        return True  # unknown: assume ours


def storage_failure(exc: BaseException, storage: Path | str, study_dir: Path | None = None) -> StorageFailure | None:
    """The storage failure behind ``exc``, if one is (see the module docstring); else None.

    Args:
        storage: the path to name in the message (``--storage``).
        study_dir: the study directory: ENOENT counts as a failure only once it is gone.
    """
    texts = []
    for e in _causes(exc):
        if isinstance(e, StorageFailure):
            return e
        store = _store_failure(str(e), storage)
        if store is not None:
            return store
        code = getattr(e, "errno", None) if isinstance(e, OSError) else None
        if code is None:
            texts.append(str(e))
            continue
        filename = getattr(e, "filename", None) or next(iter(_QUOTED_PATH.findall(str(e))), None)
        if filename and not _under(filename, storage):
            continue  # another disk (Ray's temporary folder on some node): not the study's storage
        if code in REASONS:
            return StorageFailure(storage, REASONS[code], code, filename)
        if code in VANISHED and study_dir is not None and not Path(study_dir).is_dir():
            return StorageFailure(storage, f"the study directory {study_dir} is gone", code, filename)
    for text in texts:  # an error that reached the driver as text only (a trial's error from another node)
        paths = _QUOTED_PATH.findall(text)
        if paths and not any(_under(p, storage) for p in paths):
            continue
        for match in _ERRNO_TEXT.finditer(text):
            code = int(match.group(1))
            if code in REASONS:
                return StorageFailure(storage, REASONS[code], code)
    return None


def check_writable(directory: Path) -> str | None:
    """Why a file cannot be created in ``directory`` (creating missing parents), or None if one can."""
    probe = Path(directory) / f".write-probe-{os.getpid()}"
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"probe")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return REASONS.get(exc.errno, exc.strerror or str(exc))
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    return None


# -- what a study will write --


@dataclass(frozen=True)
class Estimate:
    """Bytes a study writes to its storage, by kind (an estimate: logs and Ray's state vary)."""

    checkpoints: int
    tables: int
    ray_state: int
    logs: int

    @property
    def total(self) -> int:
        return self.checkpoints + self.tables + self.ray_state + self.logs

    def describe(self) -> str:
        return (
            f"about {human(self.total)}: checkpoints {human(self.checkpoints)}, tables {human(self.tables)}, "
            f"Ray's state {human(self.ray_state)}, logs {human(self.logs)}"
        )


def checkpoint_bytes(task: str, base_channels: int, depth: int) -> int:
    """A trial checkpoint of this network: fp32 weights and AdamW's two moments (12 bytes a parameter).

    The parameters are counted from the hyperparameters (``models.unet_shape``): the driver imports no torch."""
    return 12 * task_parameter_count(task, base_channels, depth) + CHECKPOINT_OVERHEAD


def tables_bytes(trials: int, epochs: int) -> int:
    """Both tables of ``trials`` trials of ``epochs`` epochs (measured: ~1 KiB a trial row, ~0.3 KiB an epoch)."""
    return 32 * 1024 + trials * 1024 + trials * epochs * 320


def estimate(cfg: StudyConfig, checkpoints_kept: int) -> Estimate:
    """What the study ``cfg`` writes: the largest network's checkpoint x the checkpoints a trial holds (the best
    ``checkpoints_kept``, its latest, and one that Ray deleted but the last good copy of its state still names)
    x trials, the tables, Ray's experiment state (and that good copy, ~32 KiB a trial each) and the per-trial
    logs (Ray's results, Lightning's CSV, ~4 KiB an epoch)."""
    checkpoints = ray_state = logs = 0
    trials = cfg.num_samples * len(cfg.tasks)
    for task in cfg.tasks:
        preset = cfg.task_presets[task]
        largest = checkpoint_bytes(task, max(preset.base_channels), max(preset.depths))
        checkpoints += largest * (checkpoints_kept + 2) * cfg.num_samples
        ray_state += 2 * (16 * 1024 + 32 * 1024 * cfg.num_samples)
        logs += cfg.num_samples * (16 * 1024 + 4 * 1024 * cfg.epochs)
    return Estimate(checkpoints, tables_bytes(trials, cfg.epochs), ray_state, logs)


def used_bytes(directory: Path) -> int:
    """Bytes the files under ``directory`` hold (0 if it does not exist)."""
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


# -- the reserve: room for the last table writes when the disk fills --


def make_reserve(study_dir: Path, size: int) -> bool:
    """Hold ``size`` bytes in ``<study>/.reserve`` (random bytes: a compressing file system keeps them too).

    When the disk fills, ``release_reserve`` frees them so that the driver can still write the tables' final
    statuses. False (and nothing left behind) when there is no room for it.
    """
    path = Path(study_dir) / RESERVE_FILE
    try:
        if path.is_file() and path.stat().st_size >= size:
            return True
        with open(path, "wb") as f:
            f.write(os.urandom(size))
            f.flush()
            os.fsync(f.fileno())
        return True
    except OSError as exc:
        log.warning("no room for the table reserve %s (%s)", path, exc.strerror)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        return False


def release_reserve(study_dir: Path) -> bool:
    """Free the reserve; True if there was one."""
    path = Path(study_dir) / RESERVE_FILE
    try:
        path.unlink()
    except OSError:
        return False
    return True


def reserve_size(cfg: StudyConfig) -> int:
    """Room for one more version of both tables at their planned final size."""
    return max(RESERVE_MIN, tables_bytes(cfg.num_samples * len(cfg.tasks), cfg.epochs))


# -- the Optuna journal --


def repair_journal(path: Path) -> int:
    """Cut a journal back to its last whole line; returns the bytes cut.

    Optuna appends each batch of operations with one write; a full disk can leave part of a line, and the next
    append would glue a whole line to it, which Optuna then cannot read back.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, "rb+") as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    log.warning("cut %d bytes of a partial last line from %s", len(data) - keep, path)
    return len(data) - keep
