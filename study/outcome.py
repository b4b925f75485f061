"""How a study's run ends: every trial row settled, the closing lines, and the exit status.

``exit_for`` is the one place an exception that ended the run becomes an exit status (``datamodules.cli.Exit``);
``stopped`` says why a study stopped with trials unfinished and how to continue it; ``summary`` prints what a
finished study found.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from datamodules.cli import Exit, UsageError
from results import history
from results.plan import StudyConfig
from results.query import TableError, best_trials, load_trials
from results.report import ReportError, write_report
from results.schema import FINAL_STATUSES, FINISHED_STATUSES, TABLES_SUBDIR
from results.store import checkpoint_location, child, shown
from results.tables import StudyTables
from study import importance
from study.callbacks import StateNotRestored
from study.stop import STOP
from study.storage import release_reserve, storage_failure
from study.tuner import close_optuna_study

log = logging.getLogger(__name__)


def resume_command(cfg: StudyConfig) -> str:
    return f"python -m study.run --resume --name {cfg.name} --storage {cfg.location}"


def finished(tables: StudyTables, task: str) -> int:
    """Trials of ``task`` that reached a final status, as the driver knows them (also rows the storage refused)."""
    return sum(status in FINAL_STATUSES for status in tables.statuses(task).values())


def settle(cfg: StudyConfig, tables: StudyTables) -> list[str]:
    """Once the driver stops, no trial row says ``running``: each becomes ``interrupted``, and rows held in
    memory while the storage failed are written (into the room the reserve kept). Never raises."""
    if not cfg.tables_dir.is_dir():
        return []
    if STOP.storage is not None:
        release_reserve(cfg.study_dir)
    try:
        ids = tables.interrupt_running()
        if tables.held:
            tables.flush()
            tables.held = False
        return ids
    except (OSError, TableError) as exc:
        log.warning(
            "could not write the final statuses to %s (%s); --resume marks rows left 'running' as interrupted",
            cfg.tables_dir,
            exc,
        )
        return []


def stopped(cfg: StudyConfig, tables: StudyTables, task: str | None) -> int:
    """The study stopped with trials unfinished: say why and how to continue; returns the exit status."""
    settle(cfg, tables)
    if task is None:
        task = next((t for t in cfg.tasks if finished(tables, t) < cfg.num_samples), cfg.tasks[-1])
    progress = f"{task} has {finished(tables, task)}/{cfg.num_samples} trials finished"
    if STOP.storage is not None:
        print(f"study.run: storage failure: {STOP.storage.line()}; the study stopped: {progress}", file=sys.stderr)
        print(f"  free space or fix the storage, then continue with: {resume_command(cfg)}", file=sys.stderr)
        return Exit.STORAGE
    if STOP.signum is not None:
        print(f"interrupted ({signal.Signals(STOP.signum).name}): {progress}; continue with:")
        print(f"  {resume_command(cfg)}")
        return Exit.for_signal(STOP.signum)
    statuses = tables.statuses(task)
    open_trials = [f"{t} ({status})" for t, status in sorted(statuses.items()) if status not in FINAL_STATUSES]
    never = cfg.num_samples - len(statuses)
    why = STOP.other or "Ray Tune ended the run although nothing stopped it"
    left = ", ".join([*open_trials, *([f"{never} never started"] if never > 0 else [])])
    print(f"unfinished: {progress}: {why}; unfinished: {left}; continue with:")
    print(f"  {resume_command(cfg)}")
    return Exit.UNFINISHED


def checkpoint_text(path: object, shown_as: str | None = None) -> str:
    """A checkpoint named by the epoch it holds: Ray numbers its folders from 0 (``checkpoint_000004``: epoch 5).
    ``shown_as``: how to print it (a URI for one in object storage)."""
    if not isinstance(path, str) or not path:
        return "no checkpoint recorded"
    index = Path(path).name.rpartition("_")[2]
    epoch = f"epoch {int(index) + 1}" if index.isdigit() else "its best epoch"
    return f"checkpoint of {epoch}: {shown_as or path}"


def _shown_checkpoint(cfg: StudyConfig, path: object) -> str | None:
    """A checkpoint in object storage by its URI (Ray records its path on the store); None for a path."""
    if cfg.remote and isinstance(path, str) and path:
        return shown(checkpoint_location(cfg.study_location, path))
    return None


def all_finished(cfg: StudyConfig, tables: StudyTables) -> bool:
    """Every planned trial of every task completed or stopped early (an errored trial is resumed, so it is not)."""
    return all(
        sum(status in FINISHED_STATUSES for status in tables.statuses(task).values()) >= cfg.num_samples
        for task in cfg.tasks
    )


def already_finished(cfg: StudyConfig, tables: StudyTables) -> int:
    """``--resume`` of a study with nothing left to run: said, its Optuna studies closed, its summary; no Ray."""
    print(f"study {cfg.name} has finished: every planned trial has run; nothing to resume")
    for task in cfg.tasks:
        close_optuna_study(cfg, task)
    importance.record(tables)  # a study written before the tables kept them gets its importances here
    code = summary(cfg)
    print(f"  python -m results.show {cfg.study_location}    python -m results.report {cfg.study_location}")
    return code


def summary(cfg: StudyConfig) -> int:
    """Prints statuses, the best trial per task, each restart of a trial (where it moved, and why) and the errored
    trials; returns the exit code. A trial that finished after a restart is not errored, whatever Ray said."""
    trials = load_trials(cfg.study_dir)
    print(f"\nstudy {cfg.name}: tables in {child(cfg.study_location, TABLES_SUBDIR)}")
    for task in cfg.tasks:
        rows = trials[trials["task"] == task]
        counts = rows["status"].value_counts().to_dict()
        print(f"  {task}: {len(rows)}/{cfg.num_samples} trials {counts}")
    best = best_trials(cfg.study_dir)
    for _, row in best.iterrows():
        path = row["checkpoint_path"]
        print(
            f"  best {row['task']}: trial {row['trial_id']} {cfg.metric}={row['objective_best']:.4f} "
            f"at epoch {row['best_epoch']}; {checkpoint_text(path, _shown_checkpoint(cfg, path))}"
        )
    for restart in history.restarts(trials):  # what Ray's own lines call errored, said as it happened
        print(f"  {restart.line()}")
    errored = trials[trials["status"] == "error"]
    for _, row in errored.iterrows():
        print(f"  ERROR {row['task']} trial {row['trial_id']}: {row['error']} ({row['error_file']})")
    return Exit.TRIAL_ERRORS if len(errored) else Exit.OK


def report(cfg: StudyConfig) -> None:
    """The study's HTML report beside its tables; a report that cannot be built is said, not fatal."""
    try:
        path = write_report(cfg.study_dir, device="auto" if cfg.gpus_per_trial > 0 else "cpu")
    except ReportError as exc:
        print(f"report not written: {exc}")
        return
    where = child(cfg.study_location, path.name) if cfg.remote else str(path)
    print(f"report: {where}  (rebuild with: python -m results.report {cfg.study_location})")


def exit_for(exc: BaseException, study_dir: Path, study: tuple[StudyConfig, StudyTables] | None) -> int:
    """The exit status for the exception that ended a run, once what happened is said (one line, and the resume
    command where there is something to resume). ``study``: the plan and tables once this driver runs the study.

    Re-raises an exception that is none of a study's outcomes: a bug, whose traceback is wanted.
    """
    if isinstance(exc, StateNotRestored):
        print(
            f"study.run: error: {exc}; nothing was run. Put back a backup of that directory, or start the study "
            "again under a new --name",
            file=sys.stderr,
        )
        return Exit.USAGE
    if isinstance(exc, UsageError):
        print(f"study.run: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    if isinstance(exc, SystemExit) and exc.code == signal.SIGTERM:
        # SIGTERM while Ray was starting, before this driver's handler was back in place: Ray's turned it into this
        STOP.signum = signal.SIGTERM
        if study is None:
            print("interrupted (SIGTERM) while Ray was starting; nothing was run", file=sys.stderr)
            return Exit.SIGTERM
        return stopped(*study, None)
    if isinstance(exc, KeyboardInterrupt):  # a second signal: stop at once
        signum = STOP.signum or signal.SIGINT
        print(f"interrupted at once ({signal.Signals(signum).name})", file=sys.stderr)
        if study is not None:
            settle(*study)
            print(f"  continue with: {resume_command(study[0])}", file=sys.stderr)
        return Exit.for_signal(signum)
    if isinstance(exc, Exception):
        # A storage failure that raised through Ray, Optuna or our own writes; or any error once the storage
        # has failed (Ray reads back files it could not write, e.g. a trial's cut error.pkl).
        failure = STOP.storage or storage_failure(exc, study_dir.parent, study_dir)
        if failure is not None:
            log.debug("after the storage failure", exc_info=exc)
            if study is None:
                print(f"study.run: storage failure: {failure.line()}; nothing was run", file=sys.stderr)
                return Exit.STORAGE
            STOP.storage_failed(failure)
            return stopped(*study, None)
    raise exc
