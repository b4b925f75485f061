"""The LightningDataModule: rendered-on-the-fly rasters, width-bucketed batches, the fixed collate."""

from __future__ import annotations

from typing import TypedDict, cast

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules import synth
from datamodules.batching import WidthBucketSampler
from datamodules.collate import collate
from datamodules.labels import IGNORE_INDEX, check_task, task_spec


class RasterDataset(Dataset[synth.Sample]):
    """Instances ``indices`` of one task; item ``i`` renders instance ``indices[i]`` (in the worker)."""

    def __init__(self, task: str, indices: range, *, seed: int, scale: float) -> None:
        self.task = check_task(task)
        self.indices = indices
        self.seed = seed
        self.scale = scale

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> synth.Sample:
        return synth.render(self.indices[i], seed=self.seed, task=self.task, scale=self.scale)

    def sizes(self) -> list[tuple[int, int]]:
        return [synth.shape(j, seed=self.seed, task=self.task, scale=self.scale) for j in self.indices]


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # rendering is numpy; one thread per worker avoids oversubscription


class _HParams(TypedDict):
    """``WellLogDataModule.hparams``: what ``save_hyperparameters()`` stores, ``__init__``'s arguments."""

    task: str
    n_instances: int
    batch_size: int
    scale: float
    seed: int
    num_workers: int
    val_fraction: float


class WellLogDataModule(L.LightningDataModule):
    """Train and validation are disjoint index ranges: [0, n_train) and [n_train, n_instances).

    Rasters are rendered on the fly, in the DataLoader workers, from ``(seed, task, index)`` alone; batches come
    from a width-bucketed batch sampler through the fixed collate (``Batch``, labels padded with 255).

    The training order is a function of (seed, epoch) only. On resume Lightning builds the train iterator
    before it restores the loop counters and calls ``set_epoch``, so the first resumed epoch would replay
    epoch 0's order; the checkpointed ``next_epoch`` (``state_dict``, restored first) starts the sampler at
    the right epoch (tests/reliability/test_resume_parity.py).

    Args:
        task: a task name of ``datamodules.labels.TASKS``.
        n_instances: instances in all, train and validation together (at least 2).
        batch_size: images per batch, for training and validation alike (the run shape; never searched).
        scale: raster scale factor: sizes, line widths and grid spacing shrink together (1.0 = full scale).
        seed: the generator's seed; with the task and the index it fixes every raster.
        num_workers: DataLoader worker processes (persistent, one torch thread each); 0 renders in the
            training process.
        val_fraction: share of the instances held out for validation, at least one instance and at most all
            but one.

    Raises:
        ValueError: an unknown task, ``n_instances`` below 2, or ``val_fraction`` outside (0, 1).
    """

    _next_epoch = 0

    def __init__(
        self,
        task: str,
        n_instances: int,
        batch_size: int,
        *,
        scale: float = 1.0,
        seed: int = 0,
        num_workers: int = 0,
        val_fraction: float = 0.2,
    ) -> None:
        super().__init__()
        check_task(task)
        if n_instances < 2:
            raise ValueError(f"n_instances must be >= 2 (one train and one validation), got {n_instances}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.save_hyperparameters()
        n_val = min(n_instances - 1, max(1, round(n_instances * val_fraction)))
        self.n_train = n_instances - n_val
        self.train_set = RasterDataset(task, range(0, self.n_train), seed=seed, scale=scale)
        self.val_set = RasterDataset(task, range(self.n_train, n_instances), seed=seed, scale=scale)

    @property
    def _hp(self) -> _HParams:
        # Lightning types hparams as AttributeDict | MutableMapping without keys; save_hyperparameters() in
        # __init__ filled it with exactly __init__'s arguments.
        return cast(_HParams, self.hparams)

    def _loader(self, dataset: RasterDataset, shuffle: bool) -> DataLoader[synth.Sample]:
        trainer = self.trainer
        sampler = WidthBucketSampler(
            dataset.sizes(),
            self._hp["batch_size"],
            seed=self._hp["seed"],
            shuffle=shuffle,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
        )
        sampler.set_epoch(self._next_epoch)
        workers = self._hp["num_workers"]
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=workers,
            worker_init_fn=_worker_init if workers else None,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader[synth.Sample]:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader[synth.Sample]:
        return self._loader(self.val_set, shuffle=False)

    def state_dict(self) -> dict[str, int]:
        trainer = self.trainer
        # Lightning declares _Progress.current as the base _ReadyCompletedTracker, but the fit loop's epoch_progress
        # holds a _ProcessedTracker (the _Progress default), which has ``processed``; Lightning reads it the same way.
        return {"next_epoch": trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0}  # type: ignore[attr-defined]

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._next_epoch = int(state_dict["next_epoch"])

    def class_frequencies(self, n_samples: int = 8) -> tuple[float, ...]:
        """Measured label frequencies over the first ``n_samples`` training rasters (255 excluded)."""
        n_classes = task_spec(self._hp["task"]).num_classes
        counts = np.zeros(n_classes, dtype=np.int64)
        for i in range(min(n_samples, len(self.train_set))):
            label = self.train_set[i].label
            counts += np.bincount(label[label != IGNORE_INDEX].ravel(), minlength=n_classes)[:n_classes]
        return tuple(float(c) for c in counts / max(1, counts.sum()))
