"""Presets and the resolved study configuration (frozen dataclasses; no Ray here)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from datamodules.labels import TASKS

STUDY_FILE = "study.json"  # the saved plan, in the study directory
COMPILE_CHOICES = ("auto", "on", "off")  # --compile: torch.compile a trial's network, a run-shape setting
CHECKPOINT_FILE = "checkpoint.ckpt"  # the Lightning checkpoint inside each Ray checkpoint directory


@dataclass(frozen=True)
class TaskPreset:
    """The run shape of one task: data, batching and the network sizes the search may pick."""

    n_instances: int
    batch_size: int
    scale: float
    base_channels: tuple[int, ...]
    depths: tuple[int, int]  # inclusive range searched
    checkpoint_levels: int = 0  # finest U-Net levels recomputed in backward (memory for time; never searched)


@dataclass(frozen=True)
class Preset:
    name: str
    tasks: dict[str, TaskPreset]
    epochs: int
    num_samples: int
    gpus_per_trial: float
    cpus_per_trial: float
    grace_period: int  # ASHA: epochs before the first cut
    reduction_factor: int  # ASHA: keep 1 / reduction_factor at each rung


FULL = Preset(
    name="full",
    tasks={
        "binary": TaskPreset(2_000, 1, 1.0, base_channels=(16, 24, 32), depths=(4, 5)),
        # Base 16 at batch 16 fits the widest full-scale batch (16 x 640 x 12,800) on one H200 only compiled and
        # with the full-resolution level recomputed: peak 908 B/px, 111 GiB of 139 by `python -m bench.memory`
        # on CPU (which read 13% high against the device for eager base 8). Eager it needs 232 GiB; base 24
        # would need about 150 GiB compiled. Not yet measured on the device: bench/gpu_check.sh does.
        "multiclass": TaskPreset(15_000, 16, 1.0, base_channels=(8, 16), depths=(4, 5), checkpoint_levels=1),
    },
    epochs=50,
    num_samples=16,
    gpus_per_trial=1.0,
    cpus_per_trial=8.0,
    grace_period=5,  # rungs at 5, 15, 45 epochs
    reduction_factor=3,
)
SMOKE = Preset(
    name="smoke",
    tasks={
        "binary": TaskPreset(40, 1, 0.1, base_channels=(4, 8), depths=(2, 3)),
        "multiclass": TaskPreset(80, 16, 0.1, base_channels=(4, 8), depths=(2, 3)),
    },
    epochs=6,
    num_samples=4,
    gpus_per_trial=0.0,
    cpus_per_trial=1.0,
    grace_period=1,  # rungs at 1, 2, 4 epochs
    reduction_factor=2,
)
PRESETS = {p.name: p for p in (FULL, SMOKE)}


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
    compile: str = "auto"  # torch.compile: "auto" (on where a trial runs on a GPU), "on", "off"; never searched
    dashboard: bool = True
    dashboard_host: str = "127.0.0.1"
    resume: bool = field(default=False, compare=False)
    restart_errored: bool = field(default=False, compare=False)

    @property
    def study_dir(self) -> Path:
        return Path(self.storage) / self.name

    @property
    def tables_dir(self) -> Path:
        return self.study_dir / "tables"

    def num_workers(self) -> int:
        """DataLoader workers per trial: the trial's CPUs less the one that trains."""
        return max(0, int(self.cpus_per_trial) - 1)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("resume")
        data.pop("restart_errored")
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StudyConfig:
        data = json.loads(text)
        data["tasks"] = tuple(data["tasks"])
        data["task_presets"] = {
            t: TaskPreset(**{**p, "base_channels": tuple(p["base_channels"]), "depths": tuple(p["depths"])})
            for t, p in data["task_presets"].items()
        }
        return cls(**data)

    def with_resume(self) -> StudyConfig:
        return replace(self, resume=True)


def resolve_compile(flag: str) -> bool:
    """``--compile`` to a decision: on, off, or auto = on where this process sees a CUDA device.

    Call it where the network trains (the trial's worker), so auto follows the GPUs Ray gave the trial.
    """
    if flag not in COMPILE_CHOICES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_CHOICES)}, got {flag!r}")
    if flag != "auto":
        return flag == "on"
    import torch  # here, not at import: the CLI parses its flags without torch

    return torch.cuda.is_available()


def expand_tasks(task: str) -> tuple[str, ...]:
    return TASKS if task == "both" else (task,)
