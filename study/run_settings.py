"""``RunSettings``: what is fixed for every trial of one task. Torch-free to import: the driver builds it
(study/tuner.py), the trial's worker reads it (study/trial.py)."""

from __future__ import annotations

from dataclasses import dataclass

from models.compile_mode import Compile
from results.plan import DataSource, TaskPreset


@dataclass(frozen=True)
class RunSettings:
    """What is fixed for every trial of one task: the run shape, never searched."""

    task: str
    preset: TaskPreset  # the task's data, batching and network sizes, as the plan holds them
    epochs: int
    seed: int
    num_workers: int
    cpus: float
    objective: str
    compile: Compile  # decided in the worker (AUTO: on where it sees a GPU)
    class_frequencies: tuple[float, ...] | None = None  # measured once per study (study/tuner.py)
    source: DataSource | None = None  # the study's dataset folders (--data, --val-data); None renders
