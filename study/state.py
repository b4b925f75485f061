"""Ray Tune's experiment state, protected: a last good copy after each save, a check before each restore.

Ray saves a run's state in its temporary folder, then copies it over the files in the experiment directory
``<study>/<task>/`` in place: ``experiment_state-<session>.json`` (the trials), ``search_gen_state-<session>.json``
and ``searcher-state-<session>.pkl`` (the searcher; the first is a pickle despite its name) and ``tuner.pkl``. A
full disk cuts such a copy short, and a restore from it fails; Ray then logs the failure and starts a fresh,
empty experiment under the same name. So:

- ``snapshot`` (called by the driver's callback after Ray's saves) copies the newest whole set into
  ``<task>/.state-good/`` (a new directory swapped in by renames, so a cut copy never replaces a good one);
- ``check_before_restore`` looks at the newest set before ``Tuner.restore``: whole, it is used; damaged, the
  damaged files are moved to ``<task>/.state-damaged/<UTC time>/`` and the last good copy is put back; with no good
  copy, ``DamagedState`` names the file and what to do (the driver exits 2 and runs nothing).

Files are checked without running them: JSON parses, a pickle's opcodes run to its STOP (``pickletools``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickletools
import shutil
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

GOOD_DIR = ".state-good"
DAMAGED_DIR = ".state-damaged"
MANIFEST = "manifest.json"
EXPERIMENT_STATE = "experiment_state-"
SESSION_FILES = (("experiment_state-", ".json"), ("search_gen_state-", ".json"), ("searcher-state-", ".pkl"))
TUNER_FILE = "tuner.pkl"


class DamagedState(Exception):
    """Ray's experiment state is damaged and no good copy exists."""


def damage(path: Path) -> str | None:
    """Why a state file cannot be whole (empty, cut JSON, cut pickle), or None if it is."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if not data:
        return "empty"
    if data[:1] == b"{":
        try:
            state = json.loads(data)
        except ValueError as exc:
            return f"cut short or garbled JSON ({exc})"
        if path.name.startswith(EXPERIMENT_STATE) and "trial_data" not in state:
            return "JSON without trial_data"
        return None
    try:
        ops = [op.name for op, _, _ in pickletools.genops(data)]
    except (ValueError, IndexError) as exc:  # genops raises ValueError for a cut pickle
        return f"cut short or garbled pickle ({exc})"
    return None if ops and ops[-1] == "STOP" else "pickle without its end"


def _session(name: str) -> str | None:
    for prefix, suffix in SESSION_FILES:
        if name.startswith(prefix) and name.endswith(suffix):
            return name[len(prefix) : -len(suffix)]
    return None


def _state_names(directory: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(directory) if e.is_file() and _session(e.name) is not None)
    except OSError:
        return []


def newest_set(exp_dir: Path) -> dict[str, Path]:
    """The files Ray restores from: its newest experiment state, the searcher files of the same session, and
    ``tuner.pkl``; empty when the directory holds no experiment state."""
    names = _state_names(exp_dir)
    sessions = [_session(n) for n in names if n.startswith(EXPERIMENT_STATE)]
    if not sessions:
        return {}
    newest = max(sessions)
    files = {n: Path(exp_dir) / n for n in names if _session(n) == newest}
    if (Path(exp_dir) / TUNER_FILE).is_file():
        files[TUNER_FILE] = Path(exp_dir) / TUNER_FILE
    return files


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _good_copy(directory: Path) -> dict[str, Path] | None:
    """The files of a good copy whose manifest and contents agree, or None."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        files = {name: directory / name for name in manifest["files"]}
        if all(_digest(p) == manifest["files"][n] for n, p in files.items()) and not any(map(damage, files.values())):
            return files
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def good_copy(exp_dir: Path) -> dict[str, Path] | None:
    """The last good copy of the task's state (also one a crash left mid-swap), or None."""
    base = Path(exp_dir) / GOOD_DIR
    for directory in (base, base.with_name(GOOD_DIR + ".new"), base.with_name(GOOD_DIR + ".old")):
        files = _good_copy(directory)
        if files is not None:
            return files
    return None


class StateKeeper:
    """Keeps the last good copy of one experiment directory's state (driver side, after Ray's saves)."""

    def __init__(self, exp_dir: Path) -> None:
        self.exp_dir = Path(exp_dir)
        self._seen: tuple | None = None  # (name, size, mtime) of the set last looked at

    def _signature(self, files: dict[str, Path]) -> tuple | None:
        try:
            return tuple(sorted((n, p.stat().st_size, p.stat().st_mtime_ns) for n, p in files.items()))
        except OSError:
            return None

    def snapshot(self) -> bool:
        """Copy the newest state set into the good copy if it changed since the last look and is whole.

        A set Ray is still copying fails the check and is looked at again next time. Storage errors leave the
        previous good copy in place (the caller learns of a storage failure elsewhere). Returns True if copied.
        """
        files = newest_set(self.exp_dir)
        signature = self._signature(files) if files else None
        if signature is None or signature == self._seen:
            return False
        if any(damage(p) for p in files.values()):
            return False  # being copied, or cut short: keep the last good copy
        self._seen = signature
        base = self.exp_dir / GOOD_DIR
        new, old = base.with_name(GOOD_DIR + ".new"), base.with_name(GOOD_DIR + ".old")
        try:
            shutil.rmtree(new, ignore_errors=True)
            new.mkdir()
            manifest = {"files": {}, "saved": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            for name, path in files.items():
                data = path.read_bytes()
                if damage(path) is not None:  # changed under us since the check
                    raise OSError(f"{path} changed while it was copied")
                with open(new / name, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                manifest["files"][name] = hashlib.sha256(data).hexdigest()
            with open(new / MANIFEST, "w") as f:
                json.dump(manifest, f)
                f.flush()
                os.fsync(f.fileno())
            if base.exists():
                shutil.rmtree(old, ignore_errors=True)
                base.rename(old)
            new.rename(base)
            shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            log.info("kept the previous good copy of %s: %s", self.exp_dir, exc)
            shutil.rmtree(new, ignore_errors=True)
            self._seen = None
            return False
        return True


def check_before_restore(exp_dir: Path) -> str | None:
    """Make the experiment directory restorable, or raise DamagedState; returns a line saying what was done.

    Whole newest set: nothing to do (None). Damaged: the damaged files and every state file newer than the good
    copy go to ``.state-damaged/<UTC time>/``, the good copy is put back, and the line says so.
    """
    exp_dir = Path(exp_dir)
    files = newest_set(exp_dir)
    damaged = {n: why for n, p in files.items() if (why := damage(p))}
    if files and not damaged:
        return None
    good = good_copy(exp_dir)
    if not files:
        if good is None:
            return None  # Ray never saved a state here: the caller decides whether that is a fresh start
        first = f"{exp_dir} holds no experiment state"
    else:
        name, why = sorted(damaged.items())[0]
        first = f"Ray's experiment state {exp_dir / name} is damaged ({why})"
        if good is None:
            raise DamagedState(
                f"{first} and there is no good copy of it; nothing was run. Put back a backup of {exp_dir}, "
                f"or start the study again under a new --name (the tables of this one stay readable)"
            )
    good_session = max(_session(n) or "" for n in good)
    aside = exp_dir / DAMAGED_DIR / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    aside.mkdir(parents=True)
    present = [*_state_names(exp_dir), *([TUNER_FILE] if (exp_dir / TUNER_FILE).is_file() else [])]
    for name in present:  # what is damaged, newer than the good copy, or about to be replaced by it
        if name in damaged or name in good or (_session(name) or "") > good_session:
            os.replace(exp_dir / name, aside / name)
    for name, path in good.items():
        tmp = exp_dir / f".{name}.restoring"
        shutil.copyfile(path, tmp)
        os.replace(tmp, exp_dir / name)
    saved = json.loads((next(iter(good.values())).parent / MANIFEST).read_text()).get("saved", "?")
    return f"{first}; restored the last good copy (saved {saved}); the damaged files are in {aside}"
