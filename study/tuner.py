"""Builds and runs one Tuner per task: OptunaSearch (seeded TPE) + ASHA over Lightning trials."""

from __future__ import annotations

import logging
import math

from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from models.metric_names import mode_of
from results.tables import StudyTables
from study.callbacks import TablesCallback
from study.config import StudyConfig
from study.space import Space, sampler
from study.trial import RunSettings, train_trial

log = logging.getLogger(__name__)
MAX_FAILURES = 2  # a crashed trial is retried from its last checkpoint this many times, then marked ERROR


class StudySearch(OptunaSearch):
    """OptunaSearch that tells Optuna FAIL for errored or non-finite trials.

    Ray's wrapper tells COMPLETE with the last reported value even when the trial errored, and a NaN
    value makes Optuna refuse the tell, leaving the trial RUNNING in the Optuna study forever.
    """

    def _adopt(self, trial_id: str, result: dict) -> None:
        """A trial Ray restarted under a new id (``--restart-errored``) was never suggested by Optuna: ask
        Optuna for a trial with the same parameters (enqueued, then replayed through the space)."""
        params = {k.split("/", 1)[1]: v for k, v in result.items() if k.startswith("config/")}
        self._ot_study.enqueue_trial({k: v for k, v in params.items() if k != "tversky_beta"})
        ot_trial = self._ot_study.ask()
        self._space(ot_trial)
        self._ot_trials[trial_id] = ot_trial
        log.info("Optuna trial %d stands for restarted trial %s", ot_trial.number, trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._ot_trials:
            self._adopt(trial_id, result)
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self._ot_trials:
            if not result:
                return  # restarted, then failed before its first result: nothing to tell Optuna
            self._adopt(trial_id, result)
        value = (result or {}).get(self.metric)
        if error or value is None or not math.isfinite(value):
            result, error = None, True
        super().on_trial_complete(trial_id, result=result, error=error)


def run_settings(cfg: StudyConfig, task: str) -> RunSettings:
    preset = cfg.task_presets[task]
    return RunSettings(
        task=task,
        n_instances=preset.n_instances,
        batch_size=preset.batch_size,
        scale=preset.scale,
        epochs=cfg.epochs,
        seed=cfg.seed,
        num_workers=cfg.num_workers(),
        cpus=cfg.cpus_per_trial,
        objective=cfg.metric,
    )


def trainable(cfg: StudyConfig, task: str):
    resources = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(train_trial, run=run_settings(cfg, task)), resources)


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


def build_tuner(cfg: StudyConfig, task: str, concurrency: int) -> tune.Tuner:
    mode = mode_of(cfg.metric)
    search = StudySearch(
        space=Space(task, cfg.task_presets[task]),
        metric=cfg.metric,
        mode=mode,
        sampler=sampler(cfg.seed),
    )
    scheduler = ASHAScheduler(
        time_attr="epoch",
        max_t=cfg.epochs,
        grace_period=min(cfg.grace_period, cfg.epochs),
        reduction_factor=cfg.reduction_factor,
    )
    callback = TablesCallback(cfg.tables_dir, cfg.name, cfg.metric, task, cfg.epochs, devices_per_trial(cfg))
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
            storage_path=str(cfg.study_dir.resolve()),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=2, checkpoint_score_attribute=cfg.metric, checkpoint_score_order=mode
            ),
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            callbacks=[callback],
            verbose=1,
        ),
    )


def trial_dirname(trial) -> str:
    """Short trial directories (Ray's default name spells out every parameter)."""
    return f"trial_{trial.trial_id}"


def record_best_checkpoints(cfg: StudyConfig, results: tune.ResultGrid) -> None:
    tables = StudyTables(cfg.tables_dir, cfg.name, cfg.metric)
    for result in results:
        trial_id = (result.metrics or {}).get("trial_id")
        if trial_id and result.best_checkpoints:  # a trial that failed before its first epoch has none
            best = result.get_best_checkpoint(cfg.metric, mode_of(cfg.metric))
            tables.set_checkpoint_path(trial_id, best.path)


def run_task(cfg: StudyConfig, task: str, concurrency: int) -> tune.ResultGrid:
    """Runs (or, with --resume, restores and finishes) the task's Tuner."""
    exp_dir = (cfg.study_dir / task).resolve()
    if cfg.resume and tune.Tuner.can_restore(str(exp_dir)):
        log.info("restoring %s", exp_dir)
        if cfg.restart_errored:
            # Ray gives a restarted trial a new id; its failed attempt leaves the tables (error.txt stays).
            tables = StudyTables(cfg.tables_dir, cfg.name, cfg.metric)
            for trial_id in tables.errored(task):
                log.warning("restarting errored %s trial %s from scratch (it gets a new trial id)", task, trial_id)
                tables.drop_trial(trial_id)
        errored = {"restart_errored": True} if cfg.restart_errored else {"resume_errored": True}
        tuner = tune.Tuner.restore(str(exp_dir), trainable=trainable(cfg, task), **errored)
    else:
        tuner = build_tuner(cfg, task, concurrency)
    results = tuner.fit()
    record_best_checkpoints(cfg, results)
    return results
