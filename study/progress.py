"""What a person reads while a study runs: our own progress lines, in the tables' words, instead of Ray's.

Ray Tune's trial tables and its "Current best trial" lines are off by default (``--verbose`` brings them back):
they rank by the last epoch, call a trial ASHA cut "completed" and name checkpoints from 0. ``Progress`` prints
one line per event of a trial (started, an epoch every ``every``, restarted and why, cut by ASHA, completed,
errored), taking the status and the best epoch from the study's tables, so what it says agrees with them. On a
terminal a live line below the events shows each task's counts and best so far. ``quiet_ray_advice`` drops Ray's
log lines whose advice is wrong for this tool (switching its authentication off, ``Tuner.restore``, ``num_to_keep``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import optuna
from ray import tune

from models.hparams import BASE_CHANNELS, DEPTH, LOSS, LR
from results.schema import NODE_LOST, RESTART_REASONS
from results.tables import StudyTables
from study.callbacks import restored_tables
from study.stop import STOP

# Ray's loggers and the start of each message of theirs that is noise or wrong advice for a user of this tool.
RAY_ADVICE = {
    # Only the line inviting the user to switch authentication off is dropped; token authentication itself stays on
    # (cluster.start; the dashboard answers 401 without the token) and the README says how to sign in.
    "ray._private.authentication.authentication_token_setup": ("Token authentication is enabled",),
    # "increase CheckpointConfig(num_to_keep)": a setting of ours, not the user's; a forced snapshot costs nothing.
    "ray.tune.execution.experiment_state": ("Experiment state snapshotting has been triggered",),
    # "Resume experiment with: Tuner.restore(...)": our own closing line gives the study.run --resume command.
    "ray.tune.tune": ("Experiment has been interrupted",),
    # A trial that never reported has no result file: the tables say it never started.
    "ray.tune.analysis.experiment_analysis": ("Failed to fetch metrics",),
}


class _DropAdvice(logging.Filter):
    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().lstrip().startswith(self.starts)


@contextmanager
def quiet_ray_advice() -> Iterator[None]:
    """Within: Ray's log lines listed in ``RAY_ADVICE`` are dropped (every other line of Ray's still shows), and
    Optuna says only warnings (not "A new study created in Journal" for each task)."""
    installed = [(logging.getLogger(name), _DropAdvice(starts)) for name, starts in RAY_ADVICE.items()]
    for logger, drop in installed:
        logger.addFilter(drop)
    optuna_level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(optuna_level)
        for logger, drop in installed:
            logger.removeFilter(drop)


SHOWN = tuple(p.name for p in (LOSS, BASE_CHANNELS, DEPTH, LR))  # a trial's parameters said when it starts
TRIAL_STARTED = ": started ("  # in every line saying a trial started: "binary trial 1a2b3c4d: started (...)"


def report_every(epochs: int) -> int:
    """Epochs between two progress lines of a trial: about three lines for a trial that runs its whole budget."""
    return max(1, epochs // 3)


class Progress(tune.Callback):
    """One line per event of the task's trials, after the tables have recorded it (list it after their callback).

    Pickled into Ray's experiment state with the Tuner, like every callback: it keeps no tables of its own
    (``restoring_with`` in ``study.callbacks`` gives the restored one the driver's) and its stream is stdout.
    """

    def __init__(self, tables: StudyTables, task: str, epochs: int, *, every: int | None = None) -> None:
        self.tables = tables
        self.task = task
        self.epochs = epochs
        self.every = every or report_every(epochs)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "tables": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.tables = restored_tables()

    @property
    def out(self) -> TextIO:
        return sys.stdout

    @property
    def live(self) -> bool:
        return self.out.isatty()

    def _say(self, text: str) -> None:
        if self.live:
            self.out.write(f"\r\033[K{text}\n{self._status()}")
            self.out.flush()
        else:
            print(text, file=self.out, flush=True)

    def _best_text(self, trial_id: str) -> str:
        epoch, value = self.tables.best(trial_id)
        if value is None:
            return f"no {self.tables.objective} yet"
        return f"best {self.tables.objective} {value:.4f} at epoch {epoch}"

    def _status(self) -> str:
        """The live line: counts in the tables' words and the best trial so far."""
        statuses = list(self.tables.statuses(self.task).values())
        counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
        parts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items()) or "no trial yet"
        scored = [
            (value, tid, epoch)
            for tid in self.tables.statuses(self.task)
            for epoch, value in [self.tables.best(tid)]
            if value is not None
        ]
        if not scored:
            return f"{self.task}: {parts}"
        pick = max if self.tables.objective_mode == "max" else min
        value, tid, epoch = pick(scored, key=lambda b: b[0])
        return f"{self.task}: {parts}; best {value:.4f} (trial {tid}, epoch {epoch})"

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        reasons = self.tables.history(trial.trial_id)[1]
        if reasons:  # a run after the first
            ran = self.tables.last_epoch(trial.trial_id)
            start = f"from its checkpoint of epoch {ran}" if ran else "from its first epoch"
            self._say(f"{self.task} trial {trial.trial_id}: restarted {start} (restart {len(reasons)})")
            return
        config = trial.config
        shown = ", ".join(
            f"{k} {config[k]:.2g}" if isinstance(config[k], float) else f"{k} {config[k]}" for k in SHOWN if k in config
        )
        self._say(f"{self.task} trial {trial.trial_id}{TRIAL_STARTED}{shown})")

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        epoch = int(result["epoch"])
        if epoch % self.every == 0 and epoch < self.epochs:
            value = result.get(self.tables.objective)
            now = f"{self.tables.objective} {value:.4f}" if isinstance(value, float) else "no objective"
            self._say(f"{self.task} trial {trial.trial_id}: epoch {epoch}/{self.epochs}, {now}")
        elif self.live:
            self._say_status()

    def _say_status(self) -> None:
        self.out.write(f"\r\033[K{self._status()}")
        self.out.flush()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        tid = trial.trial_id
        status = self.tables.statuses(self.task).get(tid)
        ran = self.tables.last_epoch(tid)
        if status == "stopped_early":
            self._say(f"{self.task} trial {tid}: stopped early by ASHA after epoch {ran}; {self._best_text(tid)}")
        else:
            self._say(f"{self.task} trial {tid}: completed {ran}/{self.epochs} epochs; {self._best_text(tid)}")

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        tid = trial.trial_id
        nodes, reasons = self.tables.history(tid)
        if STOP.storage is not None or not reasons:  # the study stops: the closing lines say what to do
            return
        node = nodes[len(reasons) - 1] if len(nodes) >= len(reasons) else None
        counted = "not counted against its retries" if reasons[-1] == NODE_LOST else "counted against its retries"
        self._say(
            f"{self.task} trial {tid}: after epoch {self.tables.last_epoch(tid)}, {RESTART_REASONS[reasons[-1]]} "
            f"(node {node or 'not known'}); Ray restarts it from its checkpoint, {counted}"
        )

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        tid = trial.trial_id
        status = self.tables.statuses(self.task).get(tid)
        if status == "interrupted":  # the storage failed under it: the closing lines say what to do
            self._say(f"{self.task} trial {tid}: interrupted after epoch {self.tables.last_epoch(tid)}")
            return
        where = Path(trial.path) / Path(trial.error_file).name if trial.error_file else Path(trial.path)
        self._say(f"{self.task} trial {tid}: errored after epoch {self.tables.last_epoch(tid)} (see {where})")

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        if self.live:
            self.out.write(f"\r\033[K{self._status()}\n")
            self.out.flush()
