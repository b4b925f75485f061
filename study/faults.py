"""Fault injection for the reliability suite; inert unless ``WELLLOG_STUDY_FAULTS`` names a spec file.

The spec is JSON: ``{"markers": "<dir>", "faults": [{"action": ..., "epoch": k, "trials": "all"|"one",
"times": n}]}``. Marker files in ``markers`` record what already fired (as Ray's own fault tests do), so a
retried trial is not failed forever: each fault fires at most ``times`` times per trial; ``"trials": "one"``
limits it to the first trial that reaches it (a bug in one configuration).

Actions: ``kill`` SIGKILLs the trial's own process once epoch k's checkpoint is with Tune, at the start of
epoch k + 1 (k = 0: before the first epoch); ``raise`` raises at the start of epoch k; ``nan`` poisons a
weight at the start of epoch k, so the loss becomes NaN.
"""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

ENV = "WELLLOG_STUDY_FAULTS"


class InjectedFault(RuntimeError):
    """The error a ``raise`` fault raises."""


class FaultInjector(Callback):
    def __init__(self, spec: dict, trial_id: str) -> None:
        self.markers = Path(spec["markers"])
        self.faults = spec["faults"]
        self.trial_id = trial_id
        self.markers.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_env(cls, trial_id: str) -> FaultInjector | None:
        path = os.environ.get(ENV)
        return cls(json.loads(Path(path).read_text()), trial_id) if path else None

    def _due(self, i: int, fault: dict) -> bool:
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

    def _fire(self, due_here, pl_module: L.LightningModule) -> None:
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

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        # A kill "after epoch k" lands at the start of epoch k + 1: epoch k's checkpoint is already with Tune.
        self._fire(lambda f: f["epoch"] + (f["action"] == "kill") == epoch, pl_module)
