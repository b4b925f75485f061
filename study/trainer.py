"""The trial's Lightning Trainer settings and its Ray-free callbacks (shared with bench/runshape.py)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.types import STEP_OUTPUT

from datamodules.collate import Batch
from models.metrics import TRAIN_LOSS, VAL_LOSS


class NonFiniteLossError(FloatingPointError):
    """A NaN or infinite training loss: the trial must end in ERROR, never report a number."""


class FiniteLossGuard(Callback):
    """The one non-finite loss check: raises at the first NaN or infinite training loss, and at a non-finite
    epoch validation loss, before anything is reported (Lightning's own checks stop quietly instead)."""

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: STEP_OUTPUT, batch: Batch, batch_idx: int
    ) -> None:
        # Lightning annotates outputs as STEP_OUTPUT (a Tensor, any Mapping or None); its training loops hand the
        # step's output on as a dict, never as another Mapping.
        loss = cast("torch.Tensor | None", outputs["loss"] if isinstance(outputs, dict) else outputs)
        if loss is not None and not torch.isfinite(loss.detach()).all():
            raise NonFiniteLossError(
                f"non-finite training loss {loss.item()} at epoch {trainer.current_epoch + 1}, batch {batch_idx}"
            )

    # After validation; before the reporting callbacks.
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for name in (TRAIN_LOSS, VAL_LOSS):
            value = trainer.callback_metrics.get(name)
            if value is not None and not math.isfinite(float(value)):
                raise NonFiniteLossError(f"non-finite {name} {float(value)} at epoch {trainer.current_epoch + 1}")


class EpochStats(Callback):
    """Per-epoch cost figures for the tables: seconds, images per second, padded share, learning rate."""

    def __init__(self) -> None:
        self.first_step_at: float | None = None  # wall clock of this process's first training step
        self.reset()

    def reset(self) -> None:
        self._start = time.perf_counter()
        self.images = 0
        self.useful_px = 0
        self.padded_px = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.reset()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: STEP_OUTPUT, batch: Batch, batch_idx: int
    ) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.time()
        self.images += len(batch)
        self.useful_px += int(batch.sizes.prod(dim=1).sum())
        self.padded_px += batch.images[:, 0].numel()

    def summary(self, trainer: L.Trainer) -> dict[str, float]:
        seconds = time.perf_counter() - self._start
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
        return {
            "epoch_seconds": seconds,
            "images_per_second": self.images / seconds if seconds > 0 else math.nan,
            "pad_fraction": 1.0 - self.useful_px / self.padded_px if self.padded_px else math.nan,
            "lr": float(lr),
        }


def build_trainer(
    *,
    epochs: int,
    root_dir: Path,
    callbacks: list[Callback],
    accelerator: str = "auto",
    deterministic: bool = False,
    **overrides: Any,
) -> L.Trainer:
    """The one Trainer configuration every trial uses: bf16 mixed precision on GPU, 32-bit on CPU."""
    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return L.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if on_gpu else "cpu",
        devices=1,
        precision="bf16-mixed" if on_gpu else "32-true",
        # CSV beside Ray's result.json; TensorBoard events for `tensorboard --logdir <study dir>`
        logger=[
            CSVLogger(save_dir=str(root_dir), name="lightning_logs"),
            TensorBoardLogger(save_dir=str(root_dir), name="tensorboard", default_hp_metric=False),
        ],
        callbacks=[FiniteLossGuard(), *callbacks],
        enable_checkpointing=False,  # Tune stores a full Lightning checkpoint every epoch (study/trial.py)
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # WidthBucketSampler shards itself
        deterministic=deterministic,
        default_root_dir=str(root_dir),
        log_every_n_steps=1,
        **overrides,
    )
