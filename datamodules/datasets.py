"""A study's rasters, torch-free: the rendered instances or a folder's rasters (long ones as windows), their
split into training and validation, and the label frequencies measured on the training rasters.

``datamodules.welllog`` serves these through DataLoaders; the study driver measures the class frequencies of a
task from them without importing torch (``results.plan.TaskPreset.split``, ``study.tuner``). Datasets are
map-style (``len`` and indexing), as torch's DataLoader takes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules import synth
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

VAL_FRACTION = 0.2  # of rendered instances held out for validation
FREQUENCY_SAMPLES = 8  # training rasters the class frequencies are measured on


class RasterDataset:
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


class DiskDataset:
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


@dataclass(frozen=True)
class Split:
    """A study's datasets of one task: training, validation and the optional second validation set.

    ``n_train`` counts training instances (rendered) or rasters (on disk, before long ones become windows).
    """

    train: Rasters
    val: Rasters
    val2: DiskDataset | None
    n_train: int


def split_datasets(
    task: str,
    n_instances: int,
    *,
    scale: float = 1.0,
    seed: int = 0,
    val_fraction: float = VAL_FRACTION,
    data: str | None = None,
    val_data: str | None = None,
    split: tuple[float, float, float] = DEFAULT_SPLIT,
) -> Split:
    """The datasets of ``datamodules.welllog.WellLogDataModule`` (its Args and Raises say what each does):
    rendered instances [0, n_train) and [n_train, n_instances), or a folder's train and val rasters."""
    check_task(task)
    if n_instances < 2:
        raise ValueError(f"n_instances must be >= 2 (one train and one validation), got {n_instances}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    train_set: Rasters
    val_set: Rasters
    if data is None:
        n_train, _ = split_sizes(n_instances, val_fraction)
        train_set = RasterDataset(task, range(0, n_train), seed=seed, scale=scale)
        val_set = RasterDataset(task, range(n_train, n_instances), seed=seed, scale=scale)
    else:
        train, val = study_rasters(_listed(data, split), n_instances)
        if not train or not val:
            raise ValueError(f"{data}: no training or no validation raster (python -m datamodules.check says)")
        n_train = len(train)
        train_set, val_set = DiskDataset(task, cut(train)), DiskDataset(task, cut(val))
    val2_set = None if val_data is None else DiskDataset(task, cut(validation_rasters(_listed(val_data))))
    return Split(train_set, val_set, val2_set, n_train)


def label_frequencies(task: str, rasters: Rasters, n_samples: int = FREQUENCY_SAMPLES) -> tuple[float, ...]:
    """Measured label frequencies of ``task``'s classes over the first ``n_samples`` of ``rasters`` (255
    excluded)."""
    n_classes = task_spec(task).num_classes
    counts = np.zeros(n_classes, dtype=np.int64)
    for i in range(min(n_samples, len(rasters))):
        label = rasters[i].label
        counts += np.bincount(label[label != IGNORE_INDEX].ravel(), minlength=n_classes)[:n_classes]
    return tuple(float(c) for c in counts / max(1, counts.sum()))


def _listed(folder: str, split: tuple[float, float, float] = DEFAULT_SPLIT) -> Listing:
    """A dataset folder's listing; LayoutError with its first problem (``datamodules.check`` ran before)."""
    listing = list_folder(Path(folder), split)
    if listing.problems:
        raise LayoutError(f"{listing.problems[0]} (python -m datamodules.check lists every problem)")
    return listing
