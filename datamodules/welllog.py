"""The LightningDataModule: rendered-on-the-fly rasters or a dataset on disk, width-bucketed batches, the fixed
collate."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict, cast

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules import synth
from datamodules.batching import WidthBucketSampler
from datamodules.collate import collate
from datamodules.labels import IGNORE_INDEX, check_task, task_spec
from datamodules.layout import (
    DEFAULT_SPLIT,
    LayoutError,
    Listing,
    Window,
    cut,
    list_folder,
    read_image,
    read_label,
    split_sizes,
    study_rasters,
    validation_rasters,
)
from datamodules.truth import read_truth, trace_label


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

    def name(self, i: int) -> str:
        return f"raster {self.indices[i]}"


class DiskDataset(Dataset[synth.Sample]):
    """Rasters of a folder in the on-disk layout (``datamodules.layout``); item ``i`` reads window ``i`` (in the
    worker): the image made grey, its label, and the true curves beside it or traced from the label
    (``datamodules.truth``)."""

    def __init__(self, task: str, items: Sequence[Window]) -> None:
        self.task = check_task(task)
        self.items = list(items)
        self.curve_classes = task_spec(task).curve_classes

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> synth.Sample:
        win = self.items[i]
        raster, cols = win.raster, slice(win.x0, win.x1)
        image = np.ascontiguousarray(read_image(raster.image)[:, cols])  # (H, w) uint8
        label = np.ascontiguousarray(read_label(raster.label)[:, cols])  # (H, w) uint8
        if raster.curves is not None:
            truth = read_truth(raster.curves).window(win.x0, win.x1)
        else:
            truth = trace_label(label, self.curve_classes)
        return truth.sample(image, label)

    def sizes(self) -> list[tuple[int, int]]:
        return [(w.height, w.x1 - w.x0) for w in self.items]

    def name(self, i: int) -> str:
        return self.items[i].name


Rasters = RasterDataset | DiskDataset


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
        val_fraction: float = 0.2,
        data: str | None = None,
        val_data: str | None = None,
        split: tuple[float, float, float] = DEFAULT_SPLIT,
    ) -> None:
        super().__init__()
        check_task(task)
        if n_instances < 2:
            raise ValueError(f"n_instances must be >= 2 (one train and one validation), got {n_instances}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.train_set: Rasters
        self.val_set: Rasters
        if data is None:
            self.n_train, _ = split_sizes(n_instances, val_fraction)
            self.train_set = RasterDataset(task, range(0, self.n_train), seed=seed, scale=scale)
            self.val_set = RasterDataset(task, range(self.n_train, n_instances), seed=seed, scale=scale)
        else:
            train, val = study_rasters(_listed(data, split), n_instances)
            if not train or not val:
                raise ValueError(f"{data}: no training or no validation raster (python -m datamodules.check says)")
            self.n_train = len(train)
            self.train_set, self.val_set = DiskDataset(task, cut(train)), DiskDataset(task, cut(val))
        self.val2_set = None if val_data is None else DiskDataset(task, cut(validation_rasters(_listed(val_data))))

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

    def class_frequencies(self, n_samples: int = 8) -> tuple[float, ...]:
        """Measured label frequencies over the first ``n_samples`` training rasters (255 excluded)."""
        n_classes = task_spec(self._hp["task"]).num_classes
        counts = np.zeros(n_classes, dtype=np.int64)
        for i in range(min(n_samples, len(self.train_set))):
            label = self.train_set[i].label
            counts += np.bincount(label[label != IGNORE_INDEX].ravel(), minlength=n_classes)[:n_classes]
        return tuple(float(c) for c in counts / max(1, counts.sum()))


def _listed(folder: str, split: tuple[float, float, float] = DEFAULT_SPLIT) -> Listing:
    """A dataset folder's listing; LayoutError with its first problem (``datamodules.check`` ran before)."""
    listing = list_folder(Path(folder), split)
    if listing.problems:
        raise LayoutError(f"{listing.problems[0]} (python -m datamodules.check lists every problem)")
    return listing
