"""The training system around the U-Net: loss from the task mode, validation metrics, AdamW + LR schedule.

It never calls ``backward``, ``step`` or ``zero_grad``: that ordering belongs to Lightning (see
``tests/models/test_step_parity.py``).
"""

from __future__ import annotations

import math
from typing import Protocol, cast

import lightning as L
import torch
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR

from datamodules.collate import Batch
from models.hparams import LR_SCHEDULES
from models.loss_catalogue import DEFAULT_LOSS, ParamValue
from models.losses import build_loss
from models.metric_names import second_set
from models.metrics import TRAIN_LOSS, VAL_LOSS, SegmentationMetrics
from models.modes import mode_for
from models.unet import UNet

LOSS_NAMES = {"train": TRAIN_LOSS, "val": VAL_LOSS, "val2": second_set(VAL_LOSS)}  # by stage
SECOND_SET = 1  # the validation dataloader of the second validation set (``--val-data``), when there is one


class EpochSchedule:
    """LR factor per epoch: linear warmup, then constant or cosine down to 0 at ``max_epochs``."""

    def __init__(self, warmup_epochs: int, max_epochs: int, cosine: bool) -> None:
        self.warmup_epochs, self.max_epochs, self.cosine = warmup_epochs, max_epochs, cosine

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return (epoch + 1) / (self.warmup_epochs + 1)
        if not self.cosine:
            return 1.0
        t = (epoch - self.warmup_epochs) / max(1, self.max_epochs - self.warmup_epochs)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


class _HParams(Protocol):
    """``Segmenter.hparams``: what ``save_hyperparameters()`` stores, ``__init__``'s arguments (``loss`` resolved)."""

    task: str
    base_channels: int
    depth: int
    loss: str
    loss_params: dict[str, ParamValue] | None
    class_frequencies: tuple[float, ...] | None
    lr: float
    weight_decay: float
    lr_schedule: str
    warmup_epochs: int
    max_epochs: int


class Segmenter(L.LightningModule):
    """U-Net segmenter for one task (see ``datamodules.labels.TASKS``).

    ``forward(images (B, 1, H, W)) -> logits (B, C, H, W)``, C from the task mode. ``loss_params`` are the
    values of the chosen loss's own parameters (``models.loss_catalogue.LOSSES``); ``class_frequencies`` are the
    measured pixel frequencies per class, which a ``class_weighting`` loss parameter turns into weights.
    """

    def __init__(
        self,
        task: str,
        *,
        base_channels: int = 16,
        depth: int = 4,
        loss: str | None = None,
        loss_params: dict[str, ParamValue] | None = None,
        class_frequencies: tuple[float, ...] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        lr_schedule: str = "cosine",
        warmup_epochs: int = 0,
        max_epochs: int = 50,
    ) -> None:
        super().__init__()
        self.mode = mode_for(task)
        loss = DEFAULT_LOSS[self.mode.name] if loss is None else loss
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {lr_schedule!r}; expected one of {', '.join(LR_SCHEDULES)}")
        if lr <= 0 or weight_decay < 0 or warmup_epochs < 0 or max_epochs < 1:
            raise ValueError("need lr > 0, weight_decay >= 0, warmup_epochs >= 0 and max_epochs >= 1")
        self.save_hyperparameters()
        self._hp.loss = loss  # record the resolved default
        self.net = UNet(1, self.mode.out_channels, base_channels, depth)
        # Raises ValueError for a loss the task lacks or a parameter the loss does not take.
        self.criterion = build_loss(self.mode, loss, loss_params, class_frequencies=class_frequencies)
        self.val_metrics = SegmentationMetrics(self.mode)
        self.val2_metrics = SegmentationMetrics(self.mode)  # the second validation set's, logged as val2_*

    @property
    def _hp(self) -> _HParams:
        # Lightning types hparams as AttributeDict | MutableMapping without keys; save_hyperparameters() in
        # __init__ filled an AttributeDict with exactly __init__'s arguments, read and set as attributes.
        return cast(_HParams, self.hparams)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.net(images)  # (B, 1, H, W) -> (B, C, H, W)
        return logits

    def _step(self, batch: Batch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch.images)  # (B, C, H, W)
        loss = self.criterion(logits, batch.labels)
        # each validation set has its own names: Lightning must not suffix a dataloader index to them
        self.log(LOSS_NAMES[stage], loss, on_step=False, on_epoch=True, batch_size=len(batch), add_dataloader_idx=False)
        return loss, logits

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch, "train")
        return loss

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        second = dataloader_idx == SECOND_SET
        _, logits = self._step(batch, "val2" if second else "val")
        (self.val2_metrics if second else self.val_metrics).update(logits, batch)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute())
        self.val_metrics.reset()
        if self.val2_metrics.update_called:
            self.log_dict({second_set(name): value for name, value in self.val2_metrics.compute().items()})
            self.val2_metrics.reset()

    def configure_optimizers(self) -> OptimizerLRScheduler:
        hp = self._hp
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.lr_schedule == "onecycle":
            total = int(self.trainer.estimated_stepping_batches)
            pct = hp.warmup_epochs / hp.max_epochs if hp.warmup_epochs else 0.3
            scheduler = OneCycleLR(optimizer, max_lr=hp.lr, total_steps=total, pct_start=min(pct, 0.9))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        if hp.lr_schedule == "constant" and hp.warmup_epochs == 0:
            return optimizer
        factor = EpochSchedule(hp.warmup_epochs, hp.max_epochs, cosine=hp.lr_schedule == "cosine")
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": LambdaLR(optimizer, factor), "interval": "epoch"},
        }
