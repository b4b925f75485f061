"""The Optuna searcher behind Ray Tune: Optuna's public ask/tell API, the study kept in a journal file.

Ray's own ``OptunaSearch`` keeps the Optuna study inside its pickled state, tells COMPLETE with the last value
for a trial that ASHA stopped, and leaves a trial RUNNING when the value is NaN. This searcher instead keeps
each task's study in Optuna's ``JournalStorage`` (``<study>/optuna/<task>.journal``, study name = task), which
``optuna.load_study`` and ``optuna-dashboard`` open while the study runs, and tells Optuna what the tables say:

    completed (every epoch run) -> COMPLETE, value = the trial's best objective value
    stopped early by the scheduler -> PRUNED, with the intermediate values it reported
    error, or no finite objective -> FAIL

Each Optuna trial carries the Ray trial id in its user attribute ``ray_trial_id``. The one reach into Optuna's
internals is ``_reattach``: after a driver restart a trial still running must report again, and Optuna has
no public call that turns a trial number back into a ``Trial``.
"""

from __future__ import annotations

import logging
import math
import pickle
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from ray.tune.search import Searcher

from study.callbacks import restoring
from study.importance import Direction, direction_of
from study.space import Space, sampler
from study.stop import guard_storage

log = logging.getLogger(__name__)
RAY_TRIAL_ID = "ray_trial_id"


def journal_path(study_dir: Path, task: str) -> Path:
    return Path(study_dir) / "optuna" / f"{task}.journal"


def open_study(journal: Path, task: str, *, direction: Direction | None = None, seed: int = 0) -> optuna.Study:
    """Create or load the task's Optuna study in its journal file (``direction`` None: load only)."""
    journal.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the file backend is stable in Optuna 5; older releases warn
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = JournalStorage(JournalFileBackend(str(journal)))
    if direction is None:
        return optuna.load_study(study_name=task, storage=storage)
    return optuna.create_study(
        study_name=task, storage=storage, sampler=sampler(seed), direction=direction, load_if_exists=True
    )


def _dirs(searcher: StudySearch) -> tuple[Path, Path]:
    """(storage, study directory) of a searcher, from its journal ``<storage>/<study>/optuna/<task>.journal``."""
    study_dir = searcher.journal.parent.parent
    return study_dir.parent, study_dir


def _reattach(study: optuna.Study, number: int) -> optuna.Trial:
    """A live ``Trial`` for a trial the study already holds (Optuna has no public call for this)."""
    return optuna.trial.Trial(study, study.trials[number]._trial_id)


class StudySearch(Searcher):
    """Suggests from ``space`` through Optuna and tells Optuna how each Ray trial ended.

    Args:
        space: the task's define-by-run space.
        journal: the Optuna journal file of this task.
        task: study name inside the journal.
        metric, mode: the objective and "min" / "max".
        max_epochs: a trial that ends with fewer epochs, without an error, was stopped early (PRUNED).
        seed: seed of the TPE sampler.
    """

    def __init__(
        self, space: Space, journal: Path, task: str, metric: str, mode: str, max_epochs: int, seed: int = 0
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.space = space
        self.journal = Path(journal)
        self.task = task
        self.max_epochs = max_epochs
        self.seed = seed
        self._numbers: dict[str, int] = {}  # Ray trial id -> Optuna trial number
        self._best: dict[str, float] = {}  # Ray trial id -> best objective value reported
        self._live: dict[str, optuna.Trial] = {}  # not pickled: rebuilt from the journal
        self._study: optuna.Study | None = None

    # -- state: the journal is the Optuna study; Ray's searcher checkpoint holds only the id mapping --
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_live": {}, "_study": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        tables = restoring()
        if tables is not None:  # Tuner.restore: the journal of this driver's study directory (a study in object
            # storage is resumed from a new working copy, wherever the saved one was)
            self.journal = journal_path(Path(tables.tables_dir).parent, self.task)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        """Ray's saved searcher state: the trial mapping; the journal stays this searcher's own."""
        journal = self.journal
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
        self.journal = journal

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = open_study(self.journal, self.task, direction=direction_of(self.mode), seed=self.seed)
        return self._study

    def _trial(self, trial_id: str, result: dict[str, Any] | None) -> optuna.Trial | None:
        if trial_id in self._live:
            return self._live[trial_id]
        if trial_id in self._numbers:
            number, trials = self._numbers[trial_id], self.study.trials
            if number >= len(trials) or trials[number].user_attrs.get(RAY_TRIAL_ID) != trial_id:
                # Ray's saved state names a trial the journal lost (a store or disk that failed before the
                # journal's last lines reached it): the trial goes on under a new Optuna trial.
                return self._adopt(trial_id, result)
            if trials[number].state != TrialState.RUNNING:
                return self._adopt(trial_id, result)  # e.g. an errored trial that --resume continues
            self._live[trial_id] = _reattach(self.study, number)
            return self._live[trial_id]
        return self._adopt(trial_id, result)

    def _adopt(self, trial_id: str, result: dict[str, Any] | None) -> optuna.Trial | None:
        """A Ray trial Optuna did not suggest, or whose Optuna trial already ended (a restarted or resumed
        errored trial): a new Optuna trial with the same parameters (enqueued, then replayed through the space)."""
        params = {k.split("/", 1)[1]: v for k, v in (result or {}).items() if k.startswith("config/")}
        if not params:
            return None
        self.study.enqueue_trial(params)
        trial = self.study.ask()
        self.space(trial)
        trial.set_user_attr(RAY_TRIAL_ID, trial_id)
        self._numbers[trial_id] = trial.number
        self._live[trial_id] = trial
        log.info("Optuna trial %d stands for Ray trial %s", trial.number, trial_id)
        return trial

    # -- Ray's Searcher interface (each writes the journal: a storage failure stops the study, see study.stop) --
    @guard_storage(_dirs)
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        trial = self.study.ask()
        self.space(trial)
        trial.set_user_attr(RAY_TRIAL_ID, trial_id)
        self._numbers[trial_id] = trial.number
        self._live[trial_id] = trial
        return dict(trial.params)

    def _observe(self, trial: optuna.Trial, trial_id: str, result: dict[str, Any] | None) -> None:
        value, epoch = (result or {}).get(self.metric), (result or {}).get("epoch")
        if value is None or epoch is None or not math.isfinite(value):
            return
        if int(epoch) not in self.study.trials[trial.number].intermediate_values:
            trial.report(float(value), int(epoch))
        best = self._best.get(trial_id)
        if best is None or (value < best if self.mode == "min" else value > best):
            self._best[trial_id] = float(value)

    @guard_storage(_dirs)
    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        trial = self._trial(trial_id, result)
        if trial is not None:
            self._observe(trial, trial_id, result)

    @guard_storage(_dirs)
    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        trial = self._trial(trial_id, result)
        if trial is None:
            return  # restarted, then failed before its first result: nothing to tell Optuna
        if self.study.trials[trial.number].state != TrialState.RUNNING:
            return  # told already (Ray may deliver a completion twice)
        if not error:  # a trial's last result reaches the searcher only here, not through on_trial_result
            self._observe(trial, trial_id, result)
        best = self._best.get(trial_id)
        epochs = int((result or {}).get("epoch") or 0)
        if error or best is None:
            self.study.tell(trial, state=TrialState.FAIL)
        elif epochs < self.max_epochs:
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, best)
        self._live.pop(trial_id, None)


def reconcile(journal: Path, task: str, outcomes: dict[str, tuple[str, float | None]]) -> int:
    """Make the Optuna study agree with the tables once the driver is done: no trial is left RUNNING.

    Args:
        outcomes: Ray trial id -> (status in the trials table, objective_best) for the task's trials.
    Returns:
        How many RUNNING Optuna trials were closed: a final status from the tables, FAIL where the tables have
        none (asked for but never run) or say ``running``.
    """
    if not journal.exists():
        return 0
    study = open_study(journal, task)
    closed = 0
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # dict.get takes any key at run time; typeshed wants the key type, and a trial without the attribute
        # (None) is simply not found.
        status, best = outcomes.get(frozen.user_attrs.get(RAY_TRIAL_ID), ("missing", None))  # type: ignore[arg-type]
        if status == "completed" and best is not None and math.isfinite(best):
            study.tell(frozen.number, best)
        elif status == "stopped_early":
            study.tell(frozen.number, state=TrialState.PRUNED)
        else:
            study.tell(frozen.number, state=TrialState.FAIL)
        closed += 1
    return closed
