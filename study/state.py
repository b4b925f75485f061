"""Ray Tune's experiment state, protected: a last good copy after each save, a check before each restore.

Ray saves a run's state in its temporary folder, then copies it over the files in the experiment directory
``<study>/<task>/`` in place: ``experiment_state-<session>.json`` (the trials), ``search_gen_state-<session>.json``
and ``searcher-state-<session>.pkl`` (the searcher; the first is a pickle despite its name) and ``tuner.pkl``. A
full disk cuts such a copy short, and a restore from it fails; Ray then logs the failure and starts a fresh,
empty experiment under the same name. So:

- ``snapshot`` (called by the driver's callback after Ray's saves) copies the newest whole set into
  ``<task>/.state-good/`` (a new directory swapped in by renames, so a cut copy never replaces a good one), with
  hard links to the trials' checkpoints of that moment: Ray deletes a checkpoint once better or newer ones exist,
  and the good copy may still name it as a trial's latest;
- ``check_before_restore`` looks at the newest set before ``Tuner.restore``: whole, it is used; damaged, the
  damaged files are moved to ``<task>/.state-damaged/<UTC time>/`` and the last good copy is put back with the
  checkpoints it names; with no good copy, ``DamagedState`` names the file and what to do (the driver exits 2 and
  runs nothing). A whole state equal to the good copy (a killed driver's last save) gets its deleted checkpoints
  back too.

Files are checked without running them: JSON parses, a pickle's opcodes run to its STOP (``pickletools``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import pickletools
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import TypedDict, cast

log = logging.getLogger(__name__)

GOOD_DIR = ".state-good"
DAMAGED_DIR = ".state-damaged"
MANIFEST = "manifest.json"
CHECKPOINTS = "checkpoints"  # hard links to the trials' checkpoints when the copy was made
NO_HARD_LINKS = (errno.EPERM, errno.EXDEV, errno.EOPNOTSUPP, errno.EMLINK)
EXPERIMENT_STATE = "experiment_state-"
SESSION_FILES = (("experiment_state-", ".json"), ("search_gen_state-", ".json"), ("searcher-state-", ".pkl"))
TUNER_FILE = "tuner.pkl"


class _ManifestFiles(TypedDict):
    files: dict[str, str]  # file name -> SHA-256 of its contents
    saved: str  # UTC time, ISO 8601


class _Manifest(_ManifestFiles, total=False):
    """``manifest.json`` of a good copy."""

    checkpoints: list[str]  # the hard-linked checkpoint directories, relative to the experiment directory


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
    # _state_names keeps only the names that have a session: none of these is None.
    sessions = [cast(str, _session(n)) for n in names if n.startswith(EXPERIMENT_STATE)]
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
        self._seen: tuple[tuple[str, int, int], ...] | None = None  # (name, size, mtime) of the set last looked at

    def _signature(self, files: dict[str, Path]) -> tuple[tuple[str, int, int], ...] | None:
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
            manifest: _Manifest = {"files": {}, "saved": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            for name, path in files.items():
                data = path.read_bytes()
                if damage(path) is not None:  # changed under us since the check
                    raise OSError(f"{path} changed while it was copied")
                with open(new / name, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                manifest["files"][name] = hashlib.sha256(data).hexdigest()
            manifest["checkpoints"] = self._pin(new / CHECKPOINTS)
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

    def _pin(self, into: Path) -> list[str]:
        """Hard links to every trial checkpoint there is now (no copy, no extra space while Ray keeps it).

        Ray deletes a checkpoint once enough better or newer ones exist, and the state kept here may still name
        it as a trial's latest: a restore from it would find the checkpoint gone and fail the trial.
        """
        pinned: list[str] = []
        for ckpt in sorted(p for p in self.exp_dir.glob("*/checkpoint_*") if p.is_dir()):
            rel = ckpt.relative_to(self.exp_dir)
            try:
                _link_tree(ckpt, into / rel)
            except FileNotFoundError:  # Ray is deleting it: not a latest checkpoint
                shutil.rmtree(into / rel, ignore_errors=True)
                continue
            except OSError as exc:
                if exc.errno not in NO_HARD_LINKS:
                    raise
                log.warning("cannot hard-link checkpoints in %s (%s): they are not kept with the state", ckpt, exc)
                shutil.rmtree(into, ignore_errors=True)
                return []
            pinned.append(rel.as_posix())
        return pinned


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _link_tree(source: Path, target: Path) -> None:
    for root, _, names in os.walk(source):
        into = target / Path(root).relative_to(source)
        into.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.link(Path(root) / name, into / name)


def put_back_checkpoints(exp_dir: Path, good_dir: Path) -> int:
    """Hard-link back the checkpoints of the good copy that Ray has deleted since; returns how many."""
    try:
        pinned = json.loads((good_dir / MANIFEST).read_text()).get("checkpoints", [])
    except (OSError, ValueError):
        return 0
    back = 0
    for rel in pinned:
        original, kept = Path(exp_dir) / rel, good_dir / CHECKPOINTS / rel
        if not original.exists() and kept.is_dir():
            _link_tree(kept, original)
            back += 1
    return back


def check_before_restore(exp_dir: Path) -> str | None:
    """Make the experiment directory restorable, or raise DamagedState; returns a line saying what was done.

    Whole newest set: nothing to do (None). Damaged: the damaged files and every state file newer than the good
    copy go to ``.state-damaged/<UTC time>/``, the good copy is put back, and the line says so.
    """
    exp_dir = Path(exp_dir)
    files = newest_set(exp_dir)
    damaged = {n: why for n, p in files.items() if (why := damage(p))}
    good = good_copy(exp_dir)
    good_dir = next(iter(good.values())).parent if good else None
    if files and not damaged:
        state = next(n for n in files if n.startswith(EXPERIMENT_STATE))
        if good is None or state not in good or _digest(files[state]) != _digest(good[state]):
            return None
        # good holds this state, so it is a non-empty copy and good_dir is its directory (not None).
        back = put_back_checkpoints(exp_dir, cast(Path, good_dir))  # a killed driver's last state may name deleted ones
        return f"put back {_count(back, 'checkpoint')} of {exp_dir} that its saved state names" if back else None
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
    good_dir = cast(Path, good_dir)  # good is a non-empty copy here (None raised or returned above)
    back = put_back_checkpoints(exp_dir, good_dir)
    saved = json.loads((good_dir / MANIFEST).read_text()).get("saved", "?")
    checkpoints = f" with {_count(back, 'checkpoint')} it names that Ray had deleted since" if back else ""
    return f"{first}; restored the last good copy (saved {saved}){checkpoints}; the damaged files are in {aside}"
