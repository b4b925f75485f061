"""The LightningDataModule: rendered-on-the-fly rasters or a dataset on disk (their datasets and split:
``datamodules.datasets``, torch-free), width-bucketed batches, the fixed collate."""

from __future__ import annotations

from typing import TypedDict, cast

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules import synth
from datamodules.batching import WidthBucketSampler
from datamodules.collate import collate
from datamodules.datasets import FREQUENCY_SAMPLES, VAL_FRACTION, Rasters, label_frequencies, split_datasets
from datamodules.layout import DEFAULT_SPLIT


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
    data: str | None
    val_data: str | None
    split: tuple[float, float, float]


class WellLogDataModule(L.LightningDataModule):
    """Train and validation are disjoint index ranges: [0, n_train) and [n_train, n_instances).

    Rasters are rendered on the fly, in the DataLoader workers, from ``(seed, task, index)`` alone; batches come
    from a width-bucketed batch sampler through the fixed collate (``Batch``, labels padded with 255).

    With ``data``, train and validation are instead the train and val rasters of a folder in the on-disk layout
    (``datamodules.layout``: its split.csv, else the hash split by ``split``), at most ``n_instances`` of them
    (``layout.study_rasters``); a raster longer than the collate takes is used as windows. With ``val_data``, a
    second validation set (a folder's rasters but its test split) is validated after the first: ``val_dataloader``
    returns both.

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
        data: a dataset folder to train and validate on instead of rendering (``scale`` and ``val_fraction``
            then play no part); ``n_instances`` caps the rasters it uses.
        val_data: a dataset folder validated on as a second validation set.
        split: train, val and test shares of the hash split of a folder without a split.csv.

    Raises:
        ValueError: an unknown task, ``n_instances`` below 2, ``val_fraction`` outside (0, 1), or a folder
            whose listing shows a problem (``datamodules.check`` says which), or whose split leaves training or
            validation empty (``datamodules.layout.LayoutError``, a ValueError).
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
        val_fraction: float = VAL_FRACTION,
        data: str | None = None,
        val_data: str | None = None,
        split: tuple[float, float, float] = DEFAULT_SPLIT,
    ) -> None:
        super().__init__()
        # Raises ValueError for the arguments (the split is datamodules.datasets', torch-free for the driver).
        sets = split_datasets(
            task,
            n_instances,
            scale=scale,
            seed=seed,
            val_fraction=val_fraction,
            data=data,
            val_data=val_data,
            split=split,
        )
        self.save_hyperparameters()
        self.train_set: Rasters = sets.train
        self.val_set: Rasters = sets.val
        self.val2_set = sets.val2
        self.n_train = sets.n_train

    @property
    def _hp(self) -> _HParams:
        # Lightning types hparams as AttributeDict | MutableMapping without keys; save_hyperparameters() in
        # __init__ filled it with exactly __init__'s arguments.
        return cast(_HParams, self.hparams)

    def _loader(self, dataset: Rasters, shuffle: bool) -> DataLoader[synth.Sample]:
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
            cast("Dataset[synth.Sample]", dataset),  # map-style (datamodules.datasets), not a Dataset subclass
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=workers,
            worker_init_fn=_worker_init if workers else None,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader[synth.Sample]:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader[synth.Sample] | list[DataLoader[synth.Sample]]:
        """The validation set's loader; with ``val_data``, a list of it and the second set's (dataloader 1)."""
        first = self._loader(self.val_set, shuffle=False)
        if self.val2_set is None:
            return first
        return [first, self._loader(self.val2_set, shuffle=False)]

    def state_dict(self) -> dict[str, int]:
        trainer = self.trainer
        # Lightning declares _Progress.current as the base _ReadyCompletedTracker, but the fit loop's epoch_progress
        # holds a _ProcessedTracker (the _Progress default), which has ``processed``; Lightning reads it the same way.
        return {"next_epoch": trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0}  # type: ignore[attr-defined]

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._next_epoch = int(state_dict["next_epoch"])

    def class_frequencies(self, n_samples: int = FREQUENCY_SAMPLES) -> tuple[float, ...]:
        """Measured label frequencies over the first ``n_samples`` training rasters (255 excluded)."""
        return label_frequencies(self._hp["task"], self.train_set, n_samples)
