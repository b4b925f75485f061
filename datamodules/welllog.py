"""The LightningDataModule: rendered-on-the-fly rasters, width-bucketed batches, the fixed collate."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules import synth
from datamodules.batching import WidthBucketSampler
from datamodules.collate import collate
from datamodules.labels import IGNORE_INDEX, check_task, task_spec


class RasterDataset(Dataset):
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


class WellLogDataModule(L.LightningDataModule):
    """Train and validation are disjoint index ranges: [0, n_train) and [n_train, n_instances).

    The training order is a function of (seed, epoch) only. On resume Lightning builds the train iterator
    before it restores the loop counters and calls ``set_epoch``, so the first resumed epoch would replay
    epoch 0's order; the checkpointed ``next_epoch`` (``state_dict``, restored first) starts the sampler at
    the right epoch (tests/reliability/test_resume_parity.py).
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

    def _loader(self, dataset: RasterDataset, shuffle: bool) -> DataLoader:
        trainer = self.trainer
        sampler = WidthBucketSampler(
            dataset.sizes(),
            self.hparams.batch_size,
            seed=self.hparams.seed,
            shuffle=shuffle,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
        )
        sampler.set_epoch(self._next_epoch)
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=workers,
            worker_init_fn=_worker_init if workers else None,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def state_dict(self) -> dict[str, int]:
        trainer = self.trainer
        return {"next_epoch": trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._next_epoch = int(state_dict["next_epoch"])

    def class_frequencies(self, n_samples: int = 8) -> tuple[float, ...]:
        """Measured label frequencies over the first ``n_samples`` training rasters (255 excluded)."""
        n_classes = task_spec(self.hparams.task).num_classes
        counts = np.zeros(n_classes, dtype=np.int64)
        for i in range(min(n_samples, len(self.train_set))):
            label = self.train_set[i].label
            counts += np.bincount(label[label != IGNORE_INDEX].ravel(), minlength=n_classes)[:n_classes]
        return tuple(float(c) for c in counts / max(1, counts.sum()))
