"""One trial: typed parameters in, a Lightning fit out, metrics and a full checkpoint reported every epoch."""

from __future__ import annotations

import math
import socket
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import lightning as L
import psutil
import ray
import torch
from lightning.pytorch.callbacks import Callback
from ray import tune

from datamodules.welllog import WellLogDataModule
from models.losses import class_weights_from_frequencies
from models.metric_names import METRICS
from models.segmenter import Segmenter
from study.faults import FaultInjector
from study.trainer import EpochStats, build_trainer

CHECKPOINT_FILE = "checkpoint.ckpt"


@dataclass(frozen=True)
class RunSettings:
    """What is fixed for every trial of one task: the run shape, never searched."""

    task: str
    n_instances: int
    batch_size: int
    scale: float
    epochs: int
    seed: int
    num_workers: int
    cpus: float
    objective: str


@dataclass(frozen=True)
class TrialParams:
    """The searched hyperparameters, typed. Loss parameters a trial's loss does not use keep defaults."""

    lr: float
    weight_decay: float
    base_channels: int
    depth: int
    loss: str
    lr_schedule: str
    pos_weight: float = 1.0
    class_weighting: str = "none"
    dice_weight: float = 1.0
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25
    tversky_alpha: float = 0.3
    tversky_beta: float = 0.7

    @classmethod
    def from_config(cls, config: dict) -> TrialParams:
        """The one place Tune's config dict becomes typed values; unknown keys are an error."""
        types = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(config) - set(types))
        if unknown:
            raise ValueError(f"unknown hyperparameters {unknown}; expected a subset of {sorted(types)}")
        cast = {"float": float, "int": int, "str": str}
        return cls(**{k: cast[types[k]](v) for k, v in config.items()})


class TuneReport(Callback):
    """Reports the epoch's metrics and a full Lightning checkpoint to Tune, after validation.

    The objective must be among the logged metrics: a trial that never reports it is an error, not a NaN.
    """

    def __init__(self, stats: EpochStats, objective: str) -> None:
        self.stats = stats
        self.objective = objective
        self.entered = time.time()  # the trial function started (the worker process may be older)
        self.process_started = psutil.Process().create_time()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logged = trainer.callback_metrics
        metrics = {k: float(v) for k, v in logged.items() if k in METRICS}
        if self.objective not in metrics:
            raise KeyError(f"objective {self.objective!r} was not logged; logged: {sorted(logged)}")
        for name in ("train_loss", "val_loss"):
            if not math.isfinite(metrics.get(name, 0.0)):
                raise FloatingPointError(f"non-finite {name} at epoch {trainer.current_epoch + 1}")
        metrics.update(self.stats.summary(trainer), epoch=trainer.current_epoch + 1, node=_node())
        metrics["setup_seconds"] = self.stats.first_step_at - self.entered  # data, model, Trainer, resume
        metrics["process_to_first_step_seconds"] = self.stats.first_step_at - self.process_started
        with tempfile.TemporaryDirectory() as tmp:
            trainer.save_checkpoint(Path(tmp) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def _node() -> str:
    """Host and Ray node id: several Ray nodes can share one host."""
    return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}"


def build_segmenter(params: TrialParams, run: RunSettings, datamodule: WellLogDataModule) -> Segmenter:
    class_weights = None
    if run.task == "multiclass" and params.class_weighting != "none":
        freqs = datamodule.class_frequencies()
        class_weights = tuple(float(w) for w in class_weights_from_frequencies(freqs, params.class_weighting))
    return Segmenter(
        run.task,
        base_channels=params.base_channels,
        depth=params.depth,
        loss=params.loss,
        lr=params.lr,
        weight_decay=params.weight_decay,
        lr_schedule=params.lr_schedule,
        max_epochs=run.epochs,
        pos_weight=params.pos_weight,
        class_weights=class_weights,
        dice_weight=params.dice_weight,
        focal_gamma=params.focal_gamma,
        focal_alpha=params.focal_alpha,
        tversky_alpha=params.tversky_alpha,
        tversky_beta=params.tversky_beta,
    )


def train_trial(config: dict, run: RunSettings) -> None:
    """The Tune trainable: resumes from Tune's checkpoint when Ray restarts the trial."""
    params = TrialParams.from_config(config)
    torch.set_num_threads(max(1, int(run.cpus)))
    L.seed_everything(run.seed, workers=True, verbose=False)
    datamodule = WellLogDataModule(
        run.task, run.n_instances, run.batch_size, scale=run.scale, seed=run.seed, num_workers=run.num_workers
    )
    model = build_segmenter(params, run, datamodule)
    stats = EpochStats()
    callbacks: list[Callback] = [stats, TuneReport(stats, run.objective)]
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
