"""The driver-side Tune callback that keeps the Parquet tables current as results arrive."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from ray import tune

from results.tables import StudyTables

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class TablesCallback(tune.Callback):
    """Upserts an epoch row per reported result and a trial row per state change.

    Ray delivers results at least once, so the tables are keyed by (trial_id, epoch) and a repeat
    overwrites. The callback is pickled into the experiment state (``Tuner.restore`` brings it back), so it
    holds paths and numbers only and opens the tables lazily.
    """

    def __init__(self, tables_dir: Path, study: str, objective: str, task: str, epochs: int, devices: float):
        self.tables_dir = Path(tables_dir)
        self.study = study
        self.objective = objective
        self.task = task
        self.epochs = epochs
        self.devices = devices
        self._tables: StudyTables | None = None
        self._node: dict[str, str] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tables": None}

    @property
    def tables(self) -> StudyTables:
        if self._tables is None:
            self._tables = StudyTables(self.tables_dir, self.study, self.objective)
        return self._tables

    def _record(self, trial, status: str, *, finished: bool = False, error_file: str | None = None) -> None:
        tid = trial.trial_id
        error = None
        if error_file:
            try:
                error = Path(error_file).read_text(errors="replace").strip().splitlines()[-1][:2000]
            except (OSError, IndexError):
                error = "error file unreadable"
        checkpoint = trial.checkpoint.path if trial.checkpoint is not None else None
        self.tables.record_trial(
            tid,
            self.task,
            status=status,
            params=dict(trial.config),
            epoch_budget=self.epochs,
            devices=self.devices,
            started_at=self.tables.started_at(tid) or _now(),  # a resumed trial keeps its first start
            finished_at=_now() if finished else None,
            node=self._node.get(tid, ""),
            checkpoint_path=checkpoint,
            error=error,
            error_file=error_file,
        )

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._record(trial, "running")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        node = str(result.get("node") or result.get("hostname") or "")
        self.tables.record_epoch(trial.trial_id, self.task, int(result["epoch"]), result)  # refreshes its row too
        if self._node.get(trial.trial_id) != node:  # first result, or the trial moved to another node
            self._node[trial.trial_id] = node
            self._record(trial, "running")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        done = self.tables.last_epoch(trial.trial_id) >= self.epochs
        self._record(trial, "completed" if done else "stopped_early", finished=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._record(trial, "error", finished=True, error_file=trial.error_file)
