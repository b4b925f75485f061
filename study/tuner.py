"""Builds and runs one Tuner per task: OptunaSearch (seeded TPE) + ASHA over Lightning trials."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import pandas as pd
import pyarrow.fs as pafs
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler

from datamodules.datasets import label_frequencies
from models.loss_catalogue import CLASS_WEIGHTING, LOSSES
from models.metric_names import mode_of
from results.plan import StudyConfig
from results.query import load_trials
from results.store import child, resolve
from results.tables import StudyTables
from study.callbacks import StateNotRestored, TablesCallback, restoring_with
from study.progress import Progress
from study.run_settings import RunSettings
from study.search import StudySearch, journal_path, reconcile
from study.space import Space
from study.state import StateKeeper
from study.stop import STOP
from study.trainable import train_trial

if TYPE_CHECKING:
    from ray.tune import Trainable
    from ray.tune.experiment import Trial

log = logging.getLogger(__name__)
CHECKPOINTS_KEPT = 2  # per trial, the best by the objective (Ray keeps the latest as well)
NEW_OUTPUT = "RAY_AIR_NEW_OUTPUT"  # Ray Tune's console output: its new reporter ("1") or the classic one ("0")
NO_AUTO_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"  # Tune's switch for its default loggers (TensorBoard's too)


def result_loggers() -> list[tune.Callback]:
    """Ray's result.json and progress.csv in every trial folder, without Ray's TensorBoard logger.

    That logger makes Ray print a `tensorboard --logdir` line pointing into its temporary session folder; the
    trials' TensorBoard events come from Lightning instead (study/trainer.py), under the study directory.
    """
    os.environ[NO_AUTO_LOGGERS] = "1"  # read by Tune when fit() starts
    return [JsonLoggerCallback(), CSVLoggerCallback()]


def class_frequencies(cfg: StudyConfig, task: str) -> tuple[float, ...] | None:
    """Measured once per study on the driver (on the data module's training rasters, without torch), where a
    loss of the task can weight classes by them."""
    if not any(CLASS_WEIGHTING in spec.params for spec in LOSSES[task].values()):
        return None
    return label_frequencies(task, cfg.task_presets[task].split(task, seed=cfg.seed, source=cfg.data_source()).train)


def run_settings(cfg: StudyConfig, task: str) -> RunSettings:
    return RunSettings(
        task=task,
        preset=cfg.task_presets[task],
        epochs=cfg.epochs,
        seed=cfg.seed,
        num_workers=cfg.num_workers(),
        cpus=cfg.cpus_per_trial,
        objective=cfg.metric,
        compile=cfg.compile,
        class_frequencies=class_frequencies(cfg, task),
        source=cfg.data_source(),
    )


class _Errored(TypedDict, total=False):
    """What ``Tuner.restore`` does with the errored trials: one of the two flags."""

    restart_errored: bool
    resume_errored: bool


def trainable(cfg: StudyConfig, task: str) -> type[Trainable] | Callable[..., Any]:
    resources = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
    wrapped: type[Trainable] | Callable[..., Any] = tune.with_resources(
        tune.with_parameters(train_trial, run=run_settings(cfg, task)), resources
    )
    return wrapped


def devices_per_trial(cfg: StudyConfig) -> float:
    """What a trial holds for the cost ledger: its GPUs, or its CPUs on a CPU-only study."""
    return cfg.gpus_per_trial if cfg.gpus_per_trial > 0 else cfg.cpus_per_trial


def max_concurrent(cfg: StudyConfig, cluster: dict[str, float]) -> int:
    """From the flag, else from the resources Ray sees."""
    if cfg.max_concurrent:
        return cfg.max_concurrent
    by_cpu = cluster.get("CPU", 1) // max(cfg.cpus_per_trial, 1e-9)
    by_gpu = cluster.get("GPU", 0) // cfg.gpus_per_trial if cfg.gpus_per_trial > 0 else by_cpu
    return max(1, int(min(by_cpu, by_gpu)))


def experiment(cfg: StudyConfig, task: str) -> tuple[str, pafs.FileSystem | None]:
    """Where Ray keeps the task's experiment: a local path, or a path on the study's object store and the store's
    file system (``RunConfig.storage_filesystem``)."""
    if cfg.remote:
        fs, path = resolve(child(cfg.remote, cfg.name, task))
        return path, fs
    return str((cfg.study_dir / task).resolve()), None


def build_tuner(
    cfg: StudyConfig, task: str, concurrency: int, tables: StudyTables, *, verbose: bool = False
) -> tune.Tuner:
    mode = mode_of(cfg.metric)
    search = StudySearch(
        Space(task, cfg.task_presets[task]),
        journal_path(cfg.study_dir, task),
        task,
        metric=cfg.metric,
        mode=mode,
        max_epochs=cfg.epochs,
        seed=cfg.seed,
    )
    scheduler = ASHAScheduler(
        time_attr="epoch",
        max_t=cfg.epochs,
        grace_period=min(cfg.grace_period, cfg.epochs),
        reduction_factor=cfg.reduction_factor,
    )
    callback = TablesCallback(tables, task, cfg.epochs, devices_per_trial(cfg))
    exp_path, fs = experiment(cfg, task)
    return tune.Tuner(
        trainable(cfg, task),
        tune_config=tune.TuneConfig(
            metric=cfg.metric,
            mode=mode,
            search_alg=search,
            scheduler=scheduler,
            num_samples=cfg.num_samples,
            max_concurrent_trials=concurrency,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=task,
            storage_path=exp_path.rsplit("/", 1)[0],
            storage_filesystem=fs,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=CHECKPOINTS_KEPT, checkpoint_score_attribute=cfg.metric, checkpoint_score_order=mode
            ),
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
            callbacks=[callback, Progress(tables, task, cfg.epochs), *result_loggers()],
            verbose=1 if verbose else 0,  # Ray's trial tables: --verbose; our own lines otherwise (study.progress)
        ),
    )


def trial_dirname(trial: Trial) -> str:
    """Short trial directories (Ray's default name spells out every parameter)."""
    return f"trial_{trial.trial_id}"


def record_best_checkpoints(cfg: StudyConfig, results: tune.ResultGrid, tables: StudyTables) -> None:
    # ResultGrid is a sequence by __getitem__ and __len__ (Python's old iteration protocol); Ray declares no
    # __iter__ for it.
    for result in results:  # type: ignore[attr-defined]
        trial_id = (result.metrics or {}).get("trial_id")
        if trial_id and result.best_checkpoints:  # a trial that failed before its first epoch has none
            best = result.get_best_checkpoint(cfg.metric, mode_of(cfg.metric))
            tables.set_checkpoint_path(trial_id, best.path)


def run_task(
    cfg: StudyConfig, task: str, concurrency: int, tables: StudyTables, *, verbose: bool = False
) -> tune.ResultGrid:
    """Runs (or, with --resume, restores and finishes) the task's Tuner.

    Never starts a fresh experiment for a task whose trials the tables already hold (StateNotRestored). A
    storage failure or a signal during ``fit`` ends it early (see ``study.stop``); the caller looks at ``STOP``.
    """
    # Ray's new console output prints an experiment box even when silent; its classic reporter at verbosity 0
    # prints nothing. Our lines come from study.progress either way.
    os.environ[NEW_OUTPUT] = "1" if verbose else "0"
    exp_path, fs = experiment(cfg, task)
    restore = cfg.resume and tune.Tuner.can_restore(exp_path, storage_filesystem=fs)
    if cfg.resume and not restore and tables.trial_ids(task):
        where = child(cfg.study_location, task)
        raise StateNotRestored(f"{where} holds no experiment state of Ray's, but the tables hold {task} trials")
    if restore:
        log.info("restoring %s", exp_path)
        if cfg.restart_errored:
            # Ray gives a restarted trial a new id; its failed attempt leaves the tables (error.txt stays).
            for trial_id in tables.errored(task):
                log.warning("restarting errored %s trial %s from scratch (it gets a new trial id)", task, trial_id)
                tables.drop_trial(trial_id)
        errored: _Errored = {"restart_errored": True} if cfg.restart_errored else {"resume_errored": True}
        os.environ[NO_AUTO_LOGGERS] = "1"  # on restore too: Ray's own TensorBoard logger and its line stay off
        with restoring_with(tables):  # the saved callbacks come back writing to the driver's tables
            tuner = tune.Tuner.restore(exp_path, trainable=trainable(cfg, task), storage_filesystem=fs, **errored)
    else:
        tuner = build_tuner(cfg, task, concurrency, tables, verbose=verbose)
    results = tuner.fit()
    if STOP.storage is None:
        if fs is None:  # a store's objects are whole or absent: no copy to keep there (study.state)
            StateKeeper(Path(exp_path)).snapshot()  # Ray's final save of the run
        record_best_checkpoints(cfg, results, tables)
    return results


def close_optuna_study(cfg: StudyConfig, task: str) -> int:
    """Once every planned trial of the task has finished: no Optuna trial stays RUNNING (see ``reconcile``)."""
    trials = load_trials(cfg.study_dir)
    rows = trials[trials["task"] == task]
    # pandas-stubs types every attribute of an itertuples row as any scalar pandas knows (str, date, ...);
    # objective_best is a float64 column.
    outcomes = {
        str(r.trial_id): (str(r.status), None if pd.isna(r.objective_best) else float(r.objective_best))  # type: ignore[arg-type]
        for r in rows.itertuples()
    }
    return reconcile(journal_path(cfg.study_dir, task), task, outcomes)
