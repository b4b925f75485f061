"""The driver-side Tune callback that keeps the Parquet tables current as results arrive and guards the study's
storage while Tune runs."""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from results.tables import StudyTables
from study import faults
from study.state import StateKeeper
from study.stop import STOP
from study.storage import StorageFailure, storage_failure

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

log = logging.getLogger(__name__)

SNAPSHOT_EVERY_S = 0.5  # how often the callback looks for a new state save of Ray's to keep a good copy of
# The driver's open tables while ``Tuner.restore`` unpickles the callback it saved (``restoring_with``).
_RESTORING: ContextVar[StudyTables | None] = ContextVar("tables_for_restore", default=None)


def restored_tables() -> StudyTables:
    """The tables a callback that Ray unpickles writes to (inside ``restoring_with``); RuntimeError outside it."""
    tables = _RESTORING.get()
    if tables is None:
        raise RuntimeError("a study callback was unpickled outside restoring_with(tables): it has no tables")
    return tables


def restoring() -> StudyTables | None:
    """The driver's tables while ``Tuner.restore`` unpickles what Ray saved (``restoring_with``), else None."""
    return _RESTORING.get()


@contextmanager
def restoring_with(tables: StudyTables) -> Iterator[None]:
    """Within: a TablesCallback that ``Tuner.restore`` unpickles writes to ``tables`` (the driver's, opened once)."""
    token = _RESTORING.set(tables)
    try:
        yield
    finally:
        _RESTORING.reset(token)


class StateNotRestored(RuntimeError):
    """Ray started a fresh experiment where the study expected it to restore one."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _trial_failure(trial: Trial, storage: Path, study_dir: Path) -> StorageFailure | None:
    """The storage failure behind a trial's latest error, if that is what it was."""
    import ray.cloudpickle as cloudpickle

    try:
        if trial.pickled_error_file:
            with open(trial.pickled_error_file, "rb") as f:
                failure = storage_failure(cloudpickle.load(f), storage, study_dir)
            if failure is not None:
                return failure
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, IndexError, TypeError, ValueError):
        log.debug("could not unpickle the error of trial %s", trial.trial_id, exc_info=True)
    try:
        text = Path(trial.error_file).read_text(errors="replace") if trial.error_file else ""
    except OSError:
        return None
    return storage_failure(RuntimeError(text.strip().splitlines()[-1] if text.strip() else ""), storage, study_dir)


class TablesCallback(tune.Callback):
    """Upserts an epoch row per reported result and a trial row per state change, and guards the storage.

    Ray delivers results at least once, so the tables are keyed by (trial_id, epoch) and a repeat
    overwrites. The callback is pickled into the experiment state (``Tuner.restore`` brings it back), so it
    holds paths and numbers only and opens the tables lazily.

    Guarding the storage: a storage failure in a table write, or behind a trial's error, stops the study (see
    ``study.stop``) instead of raising through Tune or retrying the trial; rows then change in memory only
    until the driver writes them at the end. After each of Ray's state saves the last good copy of the state is
    kept (``study.state``). A restore that Ray could not do (it starts a fresh experiment while the tables already
    hold trials of this task) is refused before any trial starts.
    """

    def __init__(self, tables: StudyTables, task: str, epochs: int, devices: float) -> None:
        self.tables = tables
        self.tables_dir = Path(tables.tables_dir)
        self.task = task
        self.epochs = epochs
        self.devices = devices
        self._node: dict[str, str] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "tables": None, "_keeper": None, "_staging": None, "_stepped": False, "_looked": 0.0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.tables = restored_tables()
        # This driver's study directory: a study in object storage is resumed from a new working copy.
        self.tables_dir = Path(self.tables.tables_dir)

    @property
    def study_dir(self) -> Path:
        return self.tables_dir.parent

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """A storage failure inside stops the study; other errors raise as before."""
        try:
            yield
        except OSError as exc:
            failure = storage_failure(exc, self.study_dir.parent, self.study_dir)
            if failure is None:
                raise
            self.tables.held = True
            STOP.storage_failed(failure)

    def _record(self, trial: Trial, status: str, *, finished: bool = False, error_file: str | None = None) -> None:
        tid = trial.trial_id
        error = None
        if error_file:
            try:
                error = Path(error_file).read_text(errors="replace").strip().splitlines()[-1][:2000]
            except (OSError, IndexError):
                error = "error file unreadable"
            # The study's copy, not Ray's temp folder. Ray types Trial.path Optional (a Trial built without storage);
            # a trial Tune runs always has its storage.
            error_file = str(Path(trial.path) / Path(error_file).name)  # type: ignore[arg-type]
        checkpoint = trial.checkpoint.path if trial.checkpoint is not None else None
        with self._guard():
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

    # -- the run --
    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if getattr(self, "_stepped", False):
            return
        self._stepped = True
        if trials:
            # Ray types Trial.storage Optional (a Trial built without one); a trial Tune runs always has it.
            self._staging = Path(trials[0].storage.experiment_driver_staging_path)  # type: ignore[union-attr]
        elif self.tables.trial_ids(self.task):
            raise StateNotRestored(
                f"Ray could not restore the experiment state in {self.study_dir / self.task} and would start a "
                f"fresh, empty experiment under study {self.tables.study!r}, whose tables hold {self.task} trials"
            )
        if STOP.requested:  # asked before this run's handler was installed
            STOP.ask_tune()

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if getattr(self, "_keeper", None) is None:
            self._keeper = StateKeeper(self.study_dir / self.task)
        now = time.monotonic()
        if STOP.storage is None and now - getattr(self, "_looked", 0.0) >= SNAPSHOT_EVERY_S:
            self._looked = now
            self._keeper.snapshot()

    def get_state(self) -> None:
        """Called in each of Ray's state saves, before Ray copies the state to the storage: a fault point."""
        faults.driver_point("state", self.study_dir, getattr(self, "_staging", None))
        return None

    # -- the trials --
    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._record(trial, "running")

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        node = str(result.get("node") or result.get("hostname") or "")
        with self._guard():
            faults.driver_point("table", self.study_dir)
            self.tables.record_epoch(trial.trial_id, self.task, int(result["epoch"]), result)  # refreshes its row
        if self._node.get(trial.trial_id) != node:  # first result, or the trial moved to another node
            self._node[trial.trial_id] = node
            self._record(trial, "running")

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        done = self.tables.last_epoch(trial.trial_id) >= self.epochs
        self._record(trial, "completed" if done else "stopped_early", finished=True)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        failure = _trial_failure(trial, self.study_dir.parent, self.study_dir)
        if failure is not None:
            # Not the trial's fault: it does not count against the trial's retries (Ray's run metadata is the
            # one place that counts them), and the study stops instead of retrying while the storage is down.
            trial.run_metadata.num_failures = max(0, trial.run_metadata.num_failures - 1)
            self.tables.held = True
            STOP.storage_failed(failure)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        failure = _trial_failure(trial, self.study_dir.parent, self.study_dir)
        if failure is not None:  # --resume continues it from its checkpoint
            self.tables.held = True
            STOP.storage_failed(failure)
            self._record(trial, "interrupted", error_file=trial.error_file)
            return
        self._record(trial, "error", finished=True, error_file=trial.error_file)
