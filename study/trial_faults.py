"""The trial's fault points: a Lightning callback that fires the faults of ``study.faults``' spec (its docstring
says what each does) in the trial's own process. Inert unless ``WELLLOG_STUDY_FAULTS`` names a spec file."""

from __future__ import annotations

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

from study.faults import ENV, fill


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
