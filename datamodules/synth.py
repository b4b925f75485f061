"""Synthetic ragged well-log rasters: deterministic per (seed, task, index).

Depth runs along the width. See shared DESIGN section 2 and DOMAIN section 5 for the spec.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TASKS = ("binary", "multiclass")
TASK_ID = {"binary": 0, "multiclass": 1}
GENERATOR_VERSION = 1

FULL_W = (3200, 12800)  # inclusive range at scale 1.0
FULL_H = (480, 640)


@dataclass(frozen=True)
class Sample:
    """One rendered raster with its exact labels and the curve side channel.

    Shapes: image, label (H, W) uint8; curve_rows (K, W) float32 (NaN where the curve is absent);
    curve_classes (K,) int64; curve_tracks (K, 2) float32 (top and bottom row of each curve's track).
    """

    image: np.ndarray
    label: np.ndarray
    curve_rows: np.ndarray
    curve_classes: np.ndarray
    curve_tracks: np.ndarray


def check_task(task: str) -> str:
    if task not in TASK_ID:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return task


def _streams(index: int, seed: int, task: str) -> tuple[np.random.Generator, np.random.Generator]:
    ss = np.random.SeedSequence([seed, TASK_ID[check_task(task)], index])
    shape_ss, content_ss = ss.spawn(2)
    return np.random.default_rng(shape_ss), np.random.default_rng(content_ss)


def shape(index: int, *, seed: int, task: str, scale: float = 1.0) -> tuple[int, int]:
    """(H, W) of instance `index`, without rendering it."""
    shape_rng, _ = _streams(index, seed, task)
    w = int(shape_rng.integers(FULL_W[0], FULL_W[1] + 1))
    h = int(shape_rng.integers(FULL_H[0], FULL_H[1] + 1))
    return max(1, round(h * scale)), max(1, round(w * scale))


def render(index: int, *, seed: int, task: str, scale: float = 1.0) -> Sample:
    raise NotImplementedError  # filled in by the generator work
