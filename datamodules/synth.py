"""Synthetic ragged well-log rasters: deterministic per (seed, task, index).

Depth runs along the width. See shared DESIGN section 2 and DOMAIN section 5 for the spec.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules._curves import Curve, make_curves
from datamodules._photo import draw_photo, finish
from datamodules._raster import column_runs
from datamodules._scene import draw_depth_numbers, draw_grids, draw_header, make_geometry, make_layout

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
    """Render instance `index` of (seed, task) at `scale`; byte-identical on every call.

    Returns:
        Sample with image/label (H, W) uint8, H, W = shape(index, seed=seed, task=task, scale=scale);
        curve_rows (K, W) float32; curve_classes (K,) int64; curve_tracks (K, 2) float32.
    """
    return _render_full(index, seed=seed, task=task, scale=scale)[0]


def _render_with_shape(h: int, w: int, index: int, *, seed: int, task: str, scale: float = 1.0) -> Sample:
    """Render the content of instance `index` into a forced (h, w) frame (benchmarks, tests)."""
    return _render_full(index, seed=seed, task=task, scale=scale, size=(h, w))[0]


def _render_full(
    index: int, *, seed: int, task: str, scale: float = 1.0, size: tuple[int, int] | None = None
) -> tuple[Sample, list[Curve]]:
    """Sample plus the curve objects (style, half-width, softness) for tests and previews."""
    check_task(task)
    if not (np.isfinite(scale) and 0 < scale <= 4):
        raise ValueError(f"scale must be in (0, 4], got {scale!r}")
    h, w = shape(index, seed=seed, task=task, scale=scale) if size is None else size
    _, content = _streams(index, seed, task)
    # Fixed children of the content stream, so a new feature cannot shift existing draws.
    layout_rng, geo_rng, grid_rng, text_rng, curve_rng, photo_rng = content.spawn(6)
    lay = make_layout(layout_rng, h, w, scale)
    geo = make_geometry(geo_rng, w, scale)
    ph = draw_photo(photo_rng)

    t = np.ones((h, w), np.float32)  # transmittance; ink opacity is 1 - t
    major_cols, _ = draw_grids(grid_rng, t, lay, geo, scale)
    draw_depth_numbers(text_rng, t, lay, major_cols, scale)
    draw_header(text_rng, t, lay, scale)

    label = np.zeros((h, w), np.uint8)
    curves = make_curves(curve_rng, task, lay, geo, w, scale, ph.binarise is not None)
    tf, lf = t.ravel(), label.ravel()
    for k in curve_rng.permutation(len(curves)):  # random z-order; the later-drawn curve wins
        c = curves[int(k)]
        flat, cov = column_runs(c.rows, c.connect, c.pen, c.hw, c.soft, h)
        tf[flat] *= 1.0 - c.dark * cov
        lf[flat[cov >= 0.5]] = c.cls
    image = finish(photo_rng, t, label, ph, scale)
    sample = Sample(
        image=image,
        label=label,
        curve_rows=np.stack([c.rows for c in curves]).astype(np.float32),
        curve_classes=np.array([c.cls for c in curves], np.int64),
        curve_tracks=np.array([c.track for c in curves], np.float32).reshape(len(curves), 2),
    )
    return sample, curves
