"""One trial: typed parameters in, a Lightning fit out, metrics and a full checkpoint reported every epoch.

Imported in the trial's worker only (by ``study.trainable.train_trial``): the driver never imports torch.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, cast

import lightning as L
import psutil
import torch
from lightning.pytorch.callbacks import Callback
from ray import tune

from models.compiled import CompileWatch, compile_network
from models.hparams import TrialParams
from models.inference import CHECKPOINT_FILE
from models.metric_names import METRICS
from models.segmenter import Segmenter
from study.restarts import this_node
from study.run_settings import RunSettings
from study.trainer import EpochStats, build_trainer
from study.trial_faults import FaultInjector


class TuneReport(Callback):
    """Reports the epoch's metrics and a full Lightning checkpoint to Tune, after validation.

    The objective must be among the logged metrics: a trial that never reports it is an error, not a NaN.
    """

    def __init__(self, stats: EpochStats, objective: str, compiled: CompileWatch | None = None) -> None:
        self.stats = stats
        self.objective = objective
        self.compiled = compiled
        self.entered = time.time()  # the trial function started (the worker process may be older)
        self.process_started = psutil.Process().create_time()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logged = trainer.callback_metrics
        metrics: dict[str, float | str] = {k: float(v) for k, v in logged.items() if k in METRICS}
        if self.objective not in metrics:
            raise KeyError(f"objective {self.objective!r} was not logged; logged: {sorted(logged)}")
        metrics.update(self.stats.summary(trainer), epoch=trainer.current_epoch + 1, node=this_node())
        if self.compiled is not None:  # what this epoch compiled (a resumed trial compiles again in its first)
            metrics.update(self.compiled.since_last())
        # EpochStats sets it at this process's first training batch, which Lightning runs before any epoch ends.
        first_step_at = cast(float, self.stats.first_step_at)
        metrics["setup_seconds"] = first_step_at - self.entered  # data, model, Trainer, resume
        metrics["process_to_first_step_seconds"] = first_step_at - self.process_started
        with tempfile.TemporaryDirectory() as tmp:
            trainer.save_checkpoint(Path(tmp) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def build_segmenter(params: TrialParams, run: RunSettings) -> Segmenter:
    return Segmenter(
        run.task,
        base_channels=params.base_channels,
        depth=params.depth,
        loss=params.loss,
        loss_params=params.loss_kwargs(run.task),
        class_frequencies=run.class_frequencies,
        lr=params.lr,
        weight_decay=params.weight_decay,
        lr_schedule=params.lr_schedule,
        max_epochs=run.epochs,
    )


def train(config: dict[str, Any], run: RunSettings) -> None:
    """One trial, run by the Tune trainable (study/trainable.py) in its worker: resumes from Tune's checkpoint when
    Ray restarts the trial."""
    params = TrialParams.from_config(config)
    torch.set_num_threads(max(1, int(run.cpus)))
    L.seed_everything(run.seed, workers=True, verbose=False)
    datamodule = run.preset.datamodule(run.task, seed=run.seed, num_workers=run.num_workers, source=run.source)
    model = build_segmenter(params, run)
    model.net.checkpoint_levels = run.preset.checkpoint_levels
    watch = None
    if run.compile.resolve():
        compile_network(model.net)  # in place: checkpoints keep plain parameter names
        watch = CompileWatch()
    stats = EpochStats()
    callbacks: list[Callback] = [stats, TuneReport(stats, run.objective, watch)]
    if watch is not None:
        callbacks.insert(0, watch)
    injector = FaultInjector.from_env(tune.get_context().get_trial_id())  # None unless a fault test set it
    if injector is not None:
        callbacks.append(injector)  # after TuneReport: a kill lands after the epoch's checkpoint is reported
    trial_dir = Path(tune.get_context().get_trial_dir())  # Lightning's CSV log sits beside Ray's result.json
    trainer = build_trainer(epochs=run.epochs, root_dir=trial_dir, callbacks=callbacks)
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        trainer.fit(model, datamodule=datamodule)
        return
    with checkpoint.as_directory() as ckpt_dir:
        trainer.fit(model, datamodule=datamodule, ckpt_path=Path(ckpt_dir) / CHECKPOINT_FILE, weights_only=True)
