"""Fault injection for the reliability suite; inert unless ``WELLLOG_STUDY_FAULTS`` names a spec file.

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
import math
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

ENV = "WELLLOG_STUDY_FAULTS"
FILLER = ".fault-filler"
FILL_LIMIT = 256 * 1024**2  # never fill a file system with more free space than this (a real disk by mistake)


class InjectedFault(RuntimeError):
    """The error a ``raise`` fault raises."""


class FaultInjector(Callback):
    def __init__(self, spec: dict[str, Any], trial_id: str) -> None:
        self.markers = Path(spec["markers"])
        self.faults = spec["faults"]
        self.trial_id = trial_id
        self.markers.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_env(cls, trial_id: str) -> FaultInjector | None:
        path = os.environ.get(ENV)
        return cls(json.loads(Path(path).read_text()), trial_id) if path else None

    def _due(self, i: int, fault: dict[str, Any]) -> bool:
        """Claims one firing of fault ``i`` for this trial, if any is left."""
        if fault.get("trials", "all") == "one":
            owner = self.markers / f"{i}-owner"
            try:
                fd = os.open(owner, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.write(fd, self.trial_id.encode())
                os.close(fd)
            except FileExistsError:
                if owner.read_text() != self.trial_id:
                    return False
        fired = sorted(self.markers.glob(f"{i}-{self.trial_id}-*"))
        if len(fired) >= fault.get("times", 1):
            return False
        (self.markers / f"{i}-{self.trial_id}-{len(fired)}").touch()
        return True

    def _fire(self, due_here: Callable[[dict[str, Any]], bool], pl_module: L.LightningModule) -> None:
        for i, fault in enumerate(self.faults):
            if not due_here(fault) or not self._due(i, fault):
                continue
            epoch = fault["epoch"]
            if fault["action"] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif fault["action"] == "raise":
                raise InjectedFault(f"injected fault {i} at epoch {epoch} of trial {self.trial_id}")
            elif fault["action"] == "nan":
                with torch.no_grad():
                    next(pl_module.parameters()).fill_(math.nan)
            elif fault["action"] == "fill":
                fill(Path(fault["dir"]))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        # A kill "after epoch k" lands at the start of epoch k + 1: epoch k's checkpoint is already with Tune.
        self._fire(lambda f: f["action"] != "fill" and f["epoch"] + (f["action"] == "kill") == epoch, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Validation ends before on_train_epoch_end, where the epoch's checkpoint is written and reported.
        epoch = trainer.current_epoch + 1
        self._fire(lambda f: f["action"] == "fill" and f.get("at") == "checkpoint" and f["epoch"] == epoch, pl_module)


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
