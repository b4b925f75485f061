"""Fault injection for the reliability suite; inert unless ``WELLLOG_STUDY_FAULTS`` names a spec file. The
driver's fault points live here (no torch, no Lightning: the driver never imports them); the trial's, a Lightning
callback, in ``study.trial_faults``.

The spec is JSON: ``{"markers": "<dir>", "faults": [{"action": ..., "epoch": k, "trials": "all"|"one",
"times": n}]}``. Marker files in ``markers`` record what already fired (as Ray's own fault tests do), so a
retried trial is not failed forever: each fault fires at most ``times`` times per trial; ``"trials": "one"``
limits it to the first trial that reaches it (a bug in one configuration).

Actions: ``kill`` SIGKILLs the trial's own process once epoch k's checkpoint is with Tune, at the start of
epoch k + 1 (k = 0: before the first epoch); ``raise`` raises at the start of epoch k; ``nan`` poisons a
weight at the start of epoch k, so the loss becomes NaN; ``fill`` fills the study's storage (a real file system,
a small tmpfs in the tests) with a file named ``.fault-filler-*`` in the study directory, so the next write
that needs space fails with ENOSPC:

- ``{"action": "fill", "at": "checkpoint", "epoch": k, "dir": <study directory>}``: in the trial, after epoch k's
  validation, just before its checkpoint is written to the storage (the trial itself runs in Ray's temporary
  folder, hence the directory);
- ``{"action": "fill", "at": "table", "nth": n}``: on the driver, before the n-th epoch row is written to the
  tables (counted per driver process);
- ``{"action": "fill", "at": "state", "nth": n}``: on the driver, inside Ray's n-th experiment-state save, before
  Ray copies it to the storage; the state in Ray's temporary folder gets trailing blanks (still valid JSON) so
  that the copy needs more blocks than the file it overwrites, as a growing study's state does.

Freeing the space is deleting the filler files.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

ENV = "WELLLOG_STUDY_FAULTS"
FILLER = ".fault-filler"
FILL_LIMIT = 256 * 1024**2  # never fill a file system with more free space than this (a real disk by mistake)


def fill(directory: Path) -> int:
    """Fill the file system of ``directory`` with a filler file until a write fails with ENOSPC; returns bytes.

    Refuses (RuntimeError) a file system with more than FILL_LIMIT bytes free.
    """
    st = os.statvfs(directory)
    if st.f_bavail * st.f_frsize > FILL_LIMIT:
        raise RuntimeError(f"refusing to fill {directory}: {st.f_bavail * st.f_frsize} bytes free")
    written = 0
    with open(Path(directory) / f"{FILLER}-{os.getpid()}-{os.urandom(4).hex()}", "ab", buffering=0) as f:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            chunk = os.urandom(size)
            while True:
                try:
                    n = f.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                written += n
                if n < size:
                    break
    return written


class DriverFaults:
    """The driver's storage faults (``fill`` at ``table`` or ``state``), counted per point in this process."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.faults = [f for f in spec["faults"] if f["action"] == "fill" and f.get("at") in ("table", "state")]
        self.counts: dict[str, int] = {}

    def at(self, point: str, study_dir: Path, staging: Path | None = None) -> None:
        self.counts[point] = n = self.counts.get(point, 0) + 1
        for fault in self.faults:
            if fault["at"] == point and fault["nth"] == n:
                if point == "state" and staging is not None:
                    states = sorted(Path(staging).glob("experiment_state-*.json"))
                    if states:
                        with open(states[-1], "ab") as f:
                            f.write(b" " * 16384)
                fill(study_dir)


_DRIVER: list[DriverFaults | None] = []


def driver_point(point: str, study_dir: Path, staging: Path | None = None) -> None:
    """A storage fault point on the driver; does nothing unless ``WELLLOG_STUDY_FAULTS`` names a spec."""
    if not _DRIVER:
        path = os.environ.get(ENV)
        _DRIVER.append(DriverFaults(json.loads(Path(path).read_text())) if path else None)
    if _DRIVER[0] is not None:
        _DRIVER[0].at(point, study_dir, staging)
