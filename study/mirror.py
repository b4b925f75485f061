"""A study in object storage: the driver's local working copy of the study's own files, sent to the store.

Ray Tune writes its part of a study (checkpoints, its experiment state, the trials' logs and error files)
straight to the store through ``pyarrow.fs``. The driver writes its own files (the plan, the tables, the Optuna
journals, the report) as it does on a disk, into a private working copy, and ``Mirror.push`` sends each file that
changed as one object (a store's PUT is atomic: a reader sees the old object or the new one). The driver pushes
after every table write, so the store holds a consistent study after every reported epoch, and once more at the
end. ``Mirror.pull`` makes a new working copy from the store, so that any machine that reaches the store can
resume the study: the working copy holds nothing the store does not.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from pathlib import Path

import pyarrow.fs as pafs

from datamodules.cli import UsageError
from datamodules.labels import TASKS
from results.plan import STUDY_FILE
from results.store import LocationError, child, download, resolve, shown, write_bytes
from results.tables import is_temporary

log = logging.getLogger(__name__)
WORKING_PREFIX = "welllog-study-"


def working_copy() -> Path:
    """A new private directory for a driver's working copy, removed when the driver exits (``Mirror.discard``,
    and at exit for a driver refused before it ran)."""
    path = Path(tempfile.mkdtemp(prefix=WORKING_PREFIX))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


class Mirror:
    """The study ``name``'s files under ``local`` (the working copy of ``storage``) and in ``remote``.

    Args:
        local: the working copy's storage folder (the study is ``local/name``).
        remote: the store's storage URI (the study is ``remote/name``).
        tasks: the task folders Ray writes to the store itself (left out of the working copy): every task.
    """

    def __init__(self, local: Path, remote: str, name: str, tasks: tuple[str, ...] = TASKS) -> None:
        self.local = Path(local)
        self.remote = remote
        self.name = name
        self.tasks = tasks
        self._sent: dict[str, tuple[int, int]] = {}  # relative path -> (size, mtime_ns) of the copy last sent

    @property
    def study_dir(self) -> Path:
        return self.local / self.name

    def own(self, rel: str) -> bool:
        """A file the driver writes (not Ray's task folders, not temporaries or the disk reserve)."""
        parts = rel.split("/")
        if parts[0] in self.tasks or parts[-1].startswith(".") or parts[-1].endswith(".lock"):
            return False  # Ray's, the disk reserve and hidden files, Optuna's journal lock
        return not is_temporary(parts[-1])

    def pull(self) -> int:
        """The study's own files from the store into the working copy; returns how many."""
        count = download(child(self.remote, self.name), self.study_dir, skip=lambda rel: not self.own(rel))
        for path in self.study_dir.rglob("*"):
            if path.is_file():
                self._sent[path.relative_to(self.study_dir).as_posix()] = self._signature(path)
        return count

    @staticmethod
    def _signature(path: Path) -> tuple[int, int]:
        st = path.stat()
        return st.st_size, st.st_mtime_ns

    def push(self) -> int:
        """Send every own file that changed since it was last sent; returns how many. OSError when the store
        fails (the driver treats it as a storage failure)."""
        sent = 0
        if not self.study_dir.is_dir():
            return 0
        for path in sorted(self.study_dir.rglob("*")):
            rel = path.relative_to(self.study_dir).as_posix()
            if not path.is_file() or not self.own(rel):
                continue
            try:
                signature = self._signature(path)
                data = path.read_bytes()
            except FileNotFoundError:  # replaced meanwhile: the next push sends it
                continue
            if self._sent.get(rel) == signature:
                continue
            write_bytes(child(self.remote, self.name, *rel.split("/")), data)
            self._sent[rel] = signature
            sent += 1
        return sent

    def discard(self) -> None:
        """Remove the working copy (everything in it is in the store)."""
        shutil.rmtree(self.local, ignore_errors=True)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[-1] if "AWS Error" not in text else text[text.index("AWS Error") :]


def check_store(remote: str) -> None:
    """UsageError (one line) unless the store of ``remote`` answers and its bucket exists."""
    try:
        fs, path = resolve(remote)
        bucket = path.split("/", 1)[0]
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise UsageError(f"--storage {shown(remote)}: the bucket {bucket!r} does not exist; create it first")
    except LocationError as exc:
        raise UsageError(f"--storage {exc}; give a path or a URI such as s3://bucket/prefix") from None
    except OSError as exc:
        raise UsageError(
            f"--storage {shown(remote)} cannot be reached ({_reason(exc)}); check the endpoint, the network and "
            "the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or a profile)"
        ) from None


def pull_study(remote: str, name: str, local: Path) -> None:
    """For --resume: the study's own files from the store into the working copy ``local`` (UsageError if the
    store holds no such study)."""
    study = child(remote, name)
    try:
        fs, path = resolve(child(study, STUDY_FILE))
        if fs.get_file_info(path).type != pafs.FileType.File:
            raise UsageError(f"no study at {shown(study)}; check --name and --storage (start one without --resume)")
        Mirror(local, remote, name).pull()
    except OSError as exc:
        raise UsageError(f"--storage {shown(remote)}: cannot read study {name!r} ({_reason(exc)})") from None


def check_new_in_store(remote: str, name: str) -> None:
    """UsageError when study ``name`` exists in the store or another driver holds its lock."""
    from study.object_lock import current_object_holder

    fs, path = resolve(child(remote, name))
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        raise UsageError(
            f"study {name!r} already exists in {shown(remote)}; use --resume to continue it, or choose another --name"
        )
    held = current_object_holder(remote, name)
    if held is not None:
        raise UsageError(str(held))
