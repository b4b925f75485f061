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

from results.schema import NODE_LOST, RESUMED
from results.tables import StudyTables
from study import faults, importance, restarts
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


def _exception(trial: Trial) -> BaseException | None:
    """The exception Ray recorded for the trial's latest failure (its ``error.pkl``), if one was kept and loads."""
    import ray.cloudpickle as cloudpickle

    if not trial.pickled_error_file:
        return None
    try:
        with open(trial.pickled_error_file, "rb") as f:
            exc = cloudpickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, IndexError, TypeError, ValueError):
        log.debug("could not unpickle the error of trial %s", trial.trial_id, exc_info=True)
        return None
    return exc if isinstance(exc, BaseException) else None


def _trial_failure(trial: Trial, exc: BaseException | None, storage: Path, study_dir: Path) -> StorageFailure | None:
    """The storage failure behind a trial's latest error (``exc``, else the last line of its error file), if any."""
    if exc is not None:
        failure = storage_failure(exc, storage, study_dir)
        if failure is not None:
            return failure
    try:
        text = Path(trial.error_file).read_text(errors="replace") if trial.error_file else ""
    except OSError:
        return None
    return storage_failure(RuntimeError(text.strip().splitlines()[-1] if text.strip() else ""), storage, study_dir)


def _uncount(trial: Trial) -> None:
    """Take back the failure Ray just counted against the trial's retries: it was not the trial's fault.

    Ray counts every failure but a preempted node's (``Trial.handle_error``; ``study.restarts.preempted``) before it
    decides whether to retry; its run metadata is the one place that counts them, and it is saved with the
    experiment, so ``--resume`` goes on from the corrected count.
    """
    trial.run_metadata.num_failures = max(0, trial.run_metadata.num_failures - 1)
    trial.run_metadata.invalidate_cache()


def _forget_error(trial: Trial) -> None:
    """A trial Ray restarted after its node was lost is not errored: Ray's closing lines ("Number of errored
    trials") and its results call a trial errored while its run metadata names an error file. ``error.txt`` itself
    stays in the trial's folder, and a later failure names it again (Ray appends to it)."""
    trial.run_metadata.error_filename = None
    trial.run_metadata.pickled_error_filename = None
    trial.run_metadata.invalidate_cache()


class TablesCallback(tune.Callback):
    """Upserts an epoch row per reported result and a trial row per state change, saves the parameters'
    importances when a trial finishes (``study.importance``), and guards the storage.

    Ray delivers results at least once, so the tables are keyed by (trial_id, epoch) and a repeat
    overwrites. The callback is pickled into the experiment state (``Tuner.restore`` brings it back), so it
    holds paths and numbers only and opens the tables lazily.

    Guarding the storage: a storage failure in a table write, or behind a trial's error, stops the study (see
    ``study.stop``) instead of raising through Tune or retrying the trial; rows then change in memory only
    until the driver writes them at the end. After each of Ray's state saves the last good copy of the state is
    kept (``study.state``). A restore that Ray could not do (it starts a fresh experiment while the tables already
    hold trials of this task) is refused before any trial starts.

    Every run of a trial is on the record (``StudyTables.history``): the node it reported from, and why each run
    after the first started (``results.schema.RESTART_REASONS``, told by ``study.restarts``). A lost node is not
    the trial's fault: it is not counted against the trial's retries, and Ray does not call the trial errored for
    it once the trial runs again. Ray decides whether to retry before a callback hears of the failure, so a node
    lost after the trial has used all its retries still ends it in ERROR; its row says so, and ``--resume``
    continues it with its count of retries as it was.
    """

    def __init__(self, tables: StudyTables, task: str, epochs: int, devices: float) -> None:
        self.tables = tables
        self.tables_dir = Path(tables.tables_dir)
        self.task = task
        self.epochs = epochs
        self.devices = devices
        self._restarting: set[str] = set()  # trials Ray is restarting after a failure (their reason is recorded)
        self._dead_at_start: dict[str, frozenset[str]] = {}  # per trial, the nodes dead when its run started

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "tables": None, "_keeper": None, "_staging": None, "_stepped": False, "_looked": 0.0,
                "_restarting": set(), "_dead_at_start": {}}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_restarting": set(), "_dead_at_start": {}, **state})  # older pickles lack them
        self.__dict__.pop("_node", None)  # what an older callback kept of the nodes (the tables keep them now)
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

    def _record(
        self,
        trial: Trial,
        status: str,
        *,
        finished: bool = False,
        error_file: str | None = None,
        error: str | None = None,
        nodes: list[str | None] | None = None,
        reasons: list[str] | None = None,
    ) -> None:
        tid = trial.trial_id
        if error_file:
            if error is None:
                try:
                    error = Path(error_file).read_text(errors="replace").strip().splitlines()[-1][:2000]
                except (OSError, IndexError):
                    error = "error file unreadable"
            # The study's copy, not Ray's temp folder. Ray types Trial.path Optional (a Trial built without storage);
            # a trial Tune runs always has its storage.
            error_file = str(Path(trial.path) / Path(error_file).name)  # type: ignore[arg-type]
        if nodes is None:
            nodes = self.tables.history(tid)[0]
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
                node=next((n for n in reversed(nodes) if n), ""),  # the last node known
                checkpoint_path=checkpoint,
                error=error,
                error_file=error_file,
                nodes=nodes,
                restart_reasons=reasons,
            )

    def _why(self, trial: Trial, exc: BaseException | None) -> str:
        """Why the trial's current run failed (``study.restarts.reason``)."""
        nodes, reasons = self.tables.history(trial.trial_id)
        node = nodes[len(reasons)] if len(nodes) > len(reasons) else None  # where this run reported from
        dead_at_start = self._dead_at_start.get(trial.trial_id, frozenset())
        return restarts.reason(exc, node, restarts.dead_nodes(), dead_at_start)

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
        tid = trial.trial_id
        nodes, reasons = self.tables.history(tid)
        status = self.tables.statuses(self.task).get(tid)
        if tid in self._restarting:  # Ray's restart after a failure: on_trial_recover gave its reason
            self._restarting.discard(tid)
            if reasons and reasons[-1] == NODE_LOST:  # now, not at the failure: Ray's line on it names the file
                _forget_error(trial)
        elif status is not None and status != "running":  # it ran under an earlier driver: --resume continues it
            reasons.append(RESUMED)
        self._dead_at_start[tid] = restarts.dead_nodes()
        self._record(trial, "running", nodes=nodes, reasons=reasons)

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        node = str(result.get("node") or result.get("hostname") or "") or None
        with self._guard():
            faults.driver_point("table", self.study_dir)
            self.tables.record_epoch(trial.trial_id, self.task, int(result["epoch"]), result)  # refreshes its row
        nodes, reasons = self.tables.history(trial.trial_id)
        run = len(reasons)  # this run's index: one run per restart after the first
        if len(nodes) <= run:  # the first result of this run says its node
            self._record(trial, "running", nodes=[*nodes, *[None] * (run - len(nodes)), node])

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        done = self.tables.last_epoch(trial.trial_id) >= self.epochs
        self._record(trial, "completed" if done else "stopped_early", finished=True)
        with self._guard():  # a finished trial changes what the parameters' importances rest on
            importance.record(self.tables)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        exc = _exception(trial)
        failure = _trial_failure(trial, exc, self.study_dir.parent, self.study_dir)
        why = self._why(trial, exc)
        if failure is not None or (why == NODE_LOST and not restarts.preempted(exc)):  # not the trial's fault
            _uncount(trial)
        if failure is not None:  # the study stops instead of retrying while the storage is down
            self.tables.held = True
            STOP.storage_failed(failure)
        nodes, reasons = self.tables.history(trial.trial_id)
        self._restarting.add(trial.trial_id)
        self._record(trial, "running", nodes=nodes, reasons=[*reasons, why])

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        exc = _exception(trial)
        failure = _trial_failure(trial, exc, self.study_dir.parent, self.study_dir)
        if failure is not None:  # --resume continues it from its checkpoint
            self.tables.held = True
            STOP.storage_failed(failure)
            self._record(trial, "interrupted", error_file=trial.error_file)
            return
        error = None
        if self._why(trial, exc) == NODE_LOST and not restarts.preempted(exc):
            # Ray had counted a lost node as the failure one past the trial's retries, and gave up on it (Ray
            # decides before any callback hears of the failure). Not counted: --resume goes on with its retries.
            _uncount(trial)
            error = (
                f"node lost: its node left the cluster after the trial had used its {trial.max_failures} retries, and "
                "Ray retries no further; python -m study.run --resume continues it from its checkpoint"
            )
        self._record(trial, "error", finished=True, error_file=trial.error_file, error=error)
