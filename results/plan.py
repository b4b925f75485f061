"""The plan of a study: what ``study.run`` resolved from a preset and the flags, saved as ``study.json`` in the
study directory. The study layer fills it; the readers (the report, ``results.show``) and the trials read it.

Frozen records, no Ray and no torch here: reading a plan needs neither.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datamodules.labels import TASKS
from datamodules.layout import DEFAULT_SPLIT
from models.compile_mode import Compile
from results.store import child, shown

if TYPE_CHECKING:
    from datamodules.datasets import Split
    from datamodules.welllog import WellLogDataModule

STUDY_FILE = "study.json"  # the saved plan, in the study directory


@dataclass(frozen=True)
class DataSource:
    """Where a study's rasters come from besides the generator: dataset folders (``datamodules.layout``)."""

    data: str | None = None  # train and validate on this folder instead of rendering
    val_data: str | None = None  # a second validation set
    split: tuple[float, float, float] = DEFAULT_SPLIT  # hash split shares, for a folder without split.csv


@dataclass(frozen=True)
class TaskPreset:
    """The run shape of one task: data, batching and the network sizes the search may pick."""

    n_instances: int
    batch_size: int
    scale: float
    base_channels: tuple[int, ...]
    depths: tuple[int, int]  # inclusive range searched
    checkpoint_levels: int = 0  # finest U-Net levels recomputed in backward (memory for time; never searched)

    def datamodule(
        self, task: str, *, seed: int, num_workers: int = 0, source: DataSource | None = None
    ) -> WellLogDataModule:
        """The one way a study builds the data of ``task`` from its preset (trials, the driver, the report).

        Args:
            task: ``binary`` or ``multiclass``.
            seed: the data seed of the study (rasters are deterministic per seed, task and index).
            num_workers: DataLoader worker processes (0: render in the training process).
            source: dataset folders to train and validate on, or to validate on a second time
                (``StudyConfig.data_source``); None renders every raster.

        Returns:
            The LightningDataModule over this preset's instances (with ``source.data``: at most that many of the
            folder's), batch size and scale.
        """
        from datamodules.welllog import WellLogDataModule  # imports torch and Lightning: only when data is needed

        source = source or DataSource()
        return WellLogDataModule(
            task,
            self.n_instances,
            self.batch_size,
            scale=self.scale,
            seed=seed,
            num_workers=num_workers,
            data=source.data,
            val_data=source.val_data,
            split=source.split,
        )

    def split(self, task: str, *, seed: int, source: DataSource | None = None) -> Split:
        """The datasets that ``datamodule`` serves (same arguments), torch-free: the driver measures class
        frequencies on their training rasters (``study.tuner``)."""
        from datamodules.datasets import split_datasets  # the generator: only when data is needed

        source = source or DataSource()
        return split_datasets(
            task,
            self.n_instances,
            scale=self.scale,
            seed=seed,
            data=source.data,
            val_data=source.val_data,
            split=source.split,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskPreset:
        return cls(**{**data, "base_channels": tuple(data["base_channels"]), "depths": tuple(data["depths"])})


# A failed trial is retried from its last checkpoint this many times, then marked ERROR (--max-failures); a lost
# node is not counted (study.restarts).
MAX_FAILURES = 2


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study needs, resolved from the preset and the flags. Saved as ``study.json``."""

    name: str
    storage: str
    preset: str
    tasks: tuple[str, ...]
    task_presets: dict[str, TaskPreset]
    epochs: int
    num_samples: int
    max_concurrent: int | None
    gpus_per_trial: float
    cpus_per_trial: float
    grace_period: int
    reduction_factor: int
    seed: int
    metric: str
    address: str | None = None
    # --storage URI of a study in object storage (results.store); ``storage`` is then the driver's working copy
    remote: str | None = None
    compile: Compile = Compile.AUTO
    dashboard: bool = True
    dashboard_host: str = "127.0.0.1"
    data: str | None = None  # --data: the dataset folder trained and validated on (absolute)
    val_data: str | None = None  # --val-data: the second validation set's folder (absolute)
    split: tuple[float, float, float] = DEFAULT_SPLIT  # --split: hash split shares of a folder without split.csv
    max_failures: int = MAX_FAILURES  # --max-failures; a plan from before the flag had the default
    resume: bool = field(default=False, compare=False)
    restart_errored: bool = field(default=False, compare=False)

    @property
    def study_dir(self) -> Path:
        """Where the driver reads and writes the study's own files (for a study in object storage: its working
        copy, sent to the store as it changes)."""
        return Path(self.storage) / self.name

    @property
    def location(self) -> str:
        """The storage as the user gave it (a path, or a URI without credentials): for messages and commands."""
        return shown(self.remote) if self.remote else self.storage

    @property
    def study_location(self) -> str:
        """Where the study lives: ``study_dir``, or its URI in object storage."""
        return child(self.location, self.name)

    @property
    def tables_dir(self) -> Path:
        return self.study_dir / "tables"

    def data_source(self) -> DataSource | None:
        """The study's dataset folders, or None when every raster is rendered."""
        if self.data is None and self.val_data is None:
            return None
        return DataSource(self.data, self.val_data, self.split)

    def num_workers(self) -> int:
        """DataLoader workers per trial: the trial's CPUs less the one that trains."""
        return max(0, int(self.cpus_per_trial) - 1)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("resume")
        data.pop("restart_errored")
        data["compile"] = self.compile.value
        if self.remote:
            data["remote"] = shown(self.remote)  # credentials written into a URI are never saved
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StudyConfig:
        """Raises ValueError, TypeError or KeyError for a file that is not a plan of this version."""
        data = json.loads(text)
        data["tasks"] = tuple(data["tasks"])
        data["task_presets"] = {t: TaskPreset.from_dict(p) for t, p in data["task_presets"].items()}
        if "split" in data:  # a plan from before --data has none
            data["split"] = tuple(data["split"])
        if "compile" in data:
            data["compile"] = Compile(data["compile"])
        return cls(**data)

    def with_resume(self) -> StudyConfig:
        return replace(self, resume=True)


def expand_tasks(task: str) -> tuple[str, ...]:
    """``--task``: one task, or ``both``."""
    return TASKS if task == "both" else (task,)
