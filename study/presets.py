"""The run shapes a study can start from: ``full`` (the reference sizes, one GPU per trial) and ``smoke``
(CPU-sized). Every value can be overridden by its flag; the resolved plan is a ``results.plan.StudyConfig``."""

from __future__ import annotations

from dataclasses import dataclass

from results.plan import TaskPreset


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
