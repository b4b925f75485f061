"""One driver per study: a lock file beside the study directory, created exclusively, kept fresh by a heartbeat.

``<storage>/.<name>.lock`` says who runs the study: host, pid, since when, a random token, and the heartbeat
interval and lapse it promises. It is written to a private temporary file and hard-linked to the lock name:
``link`` fails atomically when the name exists, also on NFS, where ``flock`` is not honoured reliably. While the
driver runs, a thread touches the file every ``interval`` seconds (a touch needs no free space). A driver
that stops without releasing the lock (SIGKILL, a lost node) leaves it behind; the next driver takes it over,
saying so, once the heartbeat is older than the lapse, or at once when the holder is on this host and its
process is gone. Ages are measured on the storage's clock (the mtime of a file just written there), so the
clocks of the nodes need not agree.

``WELLLOG_STUDY_LOCK_HEARTBEAT_S`` and ``WELLLOG_STUDY_LOCK_LAPSE_S`` set the interval (default 10 s) and the
lapse (default 60 s).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import psutil

log = logging.getLogger(__name__)

ENV_HEARTBEAT = "WELLLOG_STUDY_LOCK_HEARTBEAT_S"
ENV_LAPSE = "WELLLOG_STUDY_LOCK_LAPSE_S"
DEFAULT_HEARTBEAT_S = 10.0
DEFAULT_LAPSE_S = 60.0


def lock_path(storage: Path, name: str) -> Path:
    return Path(storage) / f".{name}.lock"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _env_seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {text!r}")
    return value


def timing() -> tuple[float, float]:
    """(heartbeat interval, lapse) in seconds, from the environment; ValueError for values that cannot work."""
    heartbeat = _env_seconds(ENV_HEARTBEAT, DEFAULT_HEARTBEAT_S)
    lapse = _env_seconds(ENV_LAPSE, DEFAULT_LAPSE_S)
    if lapse <= heartbeat:
        raise ValueError(f"{ENV_LAPSE} ({lapse:g} s) must exceed {ENV_HEARTBEAT} ({heartbeat:g} s)")
    return heartbeat, lapse


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a study lock."""

    host: str
    pid: int
    boot_id: str
    process_started: float  # the process's start time (pid reuse check on the same host)
    since: str  # ISO UTC
    token: str
    heartbeat_s: float
    lapse_s: float
    command: str

    @classmethod
    def me(cls, heartbeat_s: float, lapse_s: float) -> Holder:
        return cls(
            host=socket.gethostname(),
            pid=os.getpid(),
            boot_id=_boot_id(),
            process_started=psutil.Process().create_time(),
            since=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            token=secrets.token_hex(8),
            heartbeat_s=heartbeat_s,
            lapse_s=lapse_s,
            command=" ".join(["python", "-m", "study.run", *sys.argv[1:]])[:500],
        )

    def describe(self) -> str:
        since = self.since.replace("T", " ").replace("+00:00", " UTC")
        return f"pid {self.pid} on host {self.host} (since {since})"

    def on_this_host(self) -> bool:
        return self.host == socket.gethostname() and self.boot_id == _boot_id()

    def gone(self) -> bool:
        """True when the holder is on this host and its process no longer runs (False if unknown)."""
        if not self.on_this_host():
            return False
        try:
            return abs(psutil.Process(self.pid).create_time() - self.process_started) > 1.0
        except psutil.NoSuchProcess:
            return True
        except psutil.Error:
            return False


class LockHeld(Exception):
    """Another driver runs the study."""

    def __init__(self, name: str, path: Path | str, holder: Holder | None, age: float | None, note: str = "") -> None:
        self.holder = holder
        if holder is None:
            who = f"another driver (its lock {path} is unreadable; delete it if no driver runs the study)"
        else:
            beat = f", last heartbeat {age:.0f} s ago" if age is not None else ""
            who = f"another driver: {holder.describe()}{beat}; lock {path}"
        super().__init__(f"study {name!r} is in use by {who}{note}")


def _read(path: Path) -> tuple[Holder | None, float] | None:
    """(holder, mtime) of the lock file, None if there is none. Opening it revalidates NFS's cached attributes."""
    try:
        with open(path, "rb") as f:
            mtime = os.fstat(f.fileno()).st_mtime
            data = f.read()
    except FileNotFoundError:
        return None
    try:
        return Holder(**json.loads(data)), mtime
    except (ValueError, TypeError):
        return None, mtime


def current_holder(storage: Path, name: str) -> LockHeld | None:
    """A LockHeld naming the driver that holds study ``name``'s lock now, or None; reads only (for messages)."""
    path = lock_path(storage, name)
    found = _read(path)
    if found is None:
        return None
    holder, mtime = found
    age = time.time() - mtime
    if holder is not None and (holder.gone() or age > holder.lapse_s):
        return None
    return LockHeld(name, path, holder, age)


class Lock(Protocol):
    """What the driver needs of a study lock (``StudyLock`` here, ``study.object_lock`` in object storage)."""

    name: str
    takeover: str | None
    on_lost: Callable[[], None] | None

    @property
    def storage(self) -> Path | str: ...

    @property
    def held(self) -> bool: ...

    def acquire(self, wait: bool = True) -> None: ...

    def release(self) -> None: ...


class StudyLock:
    """The lock of study ``name`` in ``storage``; ``acquire`` it, then ``release`` it on every exit.

    Attributes:
        takeover: set by ``acquire`` when it took over the lock of a driver that is gone (a line to print).
        lost: set by the heartbeat when another driver took the lock over (this driver was stalled too long).
    """

    def __init__(self, storage: Path, name: str) -> None:
        self.storage: Path = Path(storage)
        self.name = name
        self.path = lock_path(storage, name)
        self.heartbeat_s, self.lapse_s = timing()
        self.me = Holder.me(self.heartbeat_s, self.lapse_s)
        self.takeover: str | None = None
        self.lost = threading.Event()
        self.on_lost: Callable[[], None] | None = None  # called (from the heartbeat thread) when it is lost
        self._held = False
        self._created: list[Path] = []  # directories acquire created (removed again if left empty)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._held

    # -- acquire --
    def _write_temp(self) -> tuple[Path, float]:
        """Our lock content in a private temporary file; its mtime is the storage's clock now."""
        tmp = self.path.with_name(f"{self.path.name}.{self.me.host}.{os.getpid()}.{self.me.token}.tmp")
        with open(tmp, "w") as f:
            json.dump(asdict(self.me), f)
            f.flush()
            os.fsync(f.fileno())
            now = os.fstat(f.fileno()).st_mtime
        return tmp, now

    def acquire(self, wait: bool = True) -> None:
        """Take the lock, or raise LockHeld naming the holder.

        A holder whose heartbeat stopped (older than two intervals) but has not lapsed yet is waited for when
        ``wait`` (a batch job restarted on another node right after a crash); a fresh heartbeat is refused
        at once. OSError when the storage cannot take the lock file (read-only, full, ...).
        """
        missing = [p for p in (self.storage, *self.storage.parents) if not p.exists()]
        self.storage.mkdir(parents=True, exist_ok=True)
        self._created = missing  # deepest first
        tmp, now = self._write_temp()
        try:
            while True:
                try:
                    os.link(tmp, self.path)
                    break
                except FileExistsError:
                    pass
                found = _read(self.path)
                if found is None:
                    continue  # released meanwhile: try again
                holder, mtime = found
                age = now - mtime
                if holder is None:
                    raise LockHeld(self.name, self.path, None, age) from None
                if holder.gone():
                    self._take_over(tmp, holder, f"its process is gone from this host (last heartbeat {age:.0f} s ago)")
                    break
                if age > holder.lapse_s:
                    self._take_over(tmp, holder, f"its heartbeat lapsed {age:.0f} s ago (lapse {holder.lapse_s:g} s)")
                    break
                if not wait or age <= 2 * holder.heartbeat_s:
                    note = "" if age <= 2 * holder.heartbeat_s else f"; it is taken over once {holder.lapse_s:g} s old"
                    raise LockHeld(self.name, self.path, holder, age, note)
                log.warning(
                    "the study lock %s of %s has no heartbeat for %.0f s; waiting for it to lapse (%g s)",
                    self.path,
                    holder.describe(),
                    age,
                    holder.lapse_s,
                )
                time.sleep(min(self.heartbeat_s, holder.lapse_s - age + 0.5))
                tmp.unlink(missing_ok=True)
                tmp, now = self._write_temp()
        finally:
            tmp.unlink(missing_ok=True)
        self._held = True
        self._thread = threading.Thread(target=self._beat, name="study-lock-heartbeat", daemon=True)
        self._thread.start()

    def _take_over(self, tmp: Path, stale: Holder, why: str) -> None:
        """Replace the lock of a driver that is gone, unless another driver is doing so right now."""
        guard = self.path.with_name(self.path.name + ".takeover")
        try:
            os.link(tmp, guard)
        except FileExistsError:
            found = _read(guard)
            now = os.stat(tmp).st_mtime
            stale_guard = found is not None and now - found[1] > self.lapse_s  # a takeover that died half-way
            try:
                if not stale_guard:
                    raise FileExistsError(guard)
                guard.unlink(missing_ok=True)
                os.link(tmp, guard)
            except FileExistsError:
                raise LockHeld(
                    self.name, self.path, found[0] if found else None, None, " (it is taking over a stale lock)"
                ) from None
        try:
            current = _read(self.path)
            if current is not None and (current[0] is None or current[0].token != stale.token):
                raise LockHeld(self.name, self.path, current[0], None)
            if current is None:
                os.link(tmp, self.path)
            else:
                os.replace(tmp, self.path)
        finally:
            guard.unlink(missing_ok=True)
        self.takeover = f"took over the study lock {self.path} of {stale.describe()}: {why}"
        log.info("%s", self.takeover)  # the driver prints it

    # -- hold --
    def _beat(self) -> None:
        failing = False
        while not self._stop.wait(self.heartbeat_s):
            try:
                found = _read(self.path)
                if found is None or found[0] is None or found[0].token != self.me.token:
                    holder = found[0].describe() if found and found[0] else "nobody"
                    log.error("the study lock %s is no longer ours (held by %s)", self.path, holder)
                    self.lost.set()
                    if self.on_lost is not None:
                        self.on_lost()
                    return
                os.utime(self.path)
                failing = False
            except OSError as exc:
                if not failing:
                    log.warning("study lock heartbeat failed: %s", exc)
                failing = True

    def release(self) -> None:
        """Stop the heartbeat and delete the lock if it is still ours; remove directories ``acquire`` created
        when nothing else was written in them. Never raises."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._held:
            self._held = False
            try:
                found = _read(self.path)
                if found is not None and found[0] is not None and found[0].token == self.me.token:
                    self.path.unlink()
            except OSError as exc:
                log.warning("could not remove the study lock %s: %s", self.path, exc)
        for directory in self._created:
            try:
                directory.rmdir()
            except OSError:
                break
