"""Synthetic raster well logs: deterministic per (seed, task, index), realistic enough to train on.

Depth runs along the width. ``shape`` gives an instance's size without rendering it; ``render`` draws it at
any scale (the same scene, smaller). What is rendered and why: docs/generator.md.

Modules: ``scene`` (page layout, distortion field), ``lithology`` (shared formation), ``signals`` (curve
types, tool response, gaps, off-scale), ``styles`` (line coding and classes), ``raster`` (sparse strokes),
``grid``, ``text``, ``fonts``, ``marks`` (shading, hand marks, stamps), ``degrade`` (paper, scanner,
visibility), ``generate`` (the order of it all), ``sample`` (what comes out), ``register`` (the exact
registration of a raster: depth per column, each curve's scale; ``render_registered``).
"""

from __future__ import annotations

import numpy as np

from datamodules.labels import check_task
from datamodules.registration import Registration
from datamodules.synth.generate import GENERATOR_VERSION, Drawn, build_scene, draw, full_shape, shape
from datamodules.synth.raster import Frame
from datamodules.synth.register import registration_of
from datamodules.synth.sample import CurveInfo, Sample

__all__ = [
    "GENERATOR_VERSION",
    "CurveInfo",
    "Drawn",
    "Sample",
    "render",
    "render_drawn",
    "render_registered",
    "shape",
]


def _check_scale(scale: float) -> float:
    if not (np.isfinite(scale) and 0 < scale <= 4):
        raise ValueError(f"scale must be in (0, 4], got {scale!r}")
    return scale


def render(index: int, *, seed: int, task: str, scale: float = 1.0) -> Sample:
    """Render instance ``index`` of (seed, task) at ``scale``; byte-identical on every call.

    Returns:
        A ``Sample`` whose image and label have shape ``shape(index, seed=seed, task=task, scale=scale)``.
    """
    return render_drawn(index, seed=seed, task=task, scale=scale).sample


def render_drawn(index: int, *, seed: int, task: str, scale: float = 1.0) -> Drawn:
    """``render`` plus the strokes' looks, half-widths and paths (tests, previews)."""
    check_task(task)
    _check_scale(scale)
    full_h, full_w = full_shape(index, seed=seed, task=task)
    h, w = shape(index, seed=seed, task=task, scale=scale)
    scene = build_scene(index, seed=seed, task=task, full_h=full_h, full_w=full_w)
    return draw(scene, Frame(h, w, full_h, full_w))


def render_registered(index: int, *, seed: int, task: str, scale: float = 1.0) -> tuple[Sample, Registration]:
    """``render`` and the exact registration of the raster (``register.registration_of``), with well-header
    fields that name the instance."""
    drawn = render_drawn(index, seed=seed, task=task, scale=scale)
    well = {
        "WELL": f"SYNTHETIC {task.upper()} {index}",
        "COMP": "welllog-study",
        "FLD": "SYNTHETIC",
        "LOC": f"seed {seed} index {index} scale {scale:g}",
        "SRVC": f"welllog-study generator v{GENERATOR_VERSION}",
    }
    return drawn.sample, registration_of(drawn, well)


def _render_with_shape(h: int, w: int, index: int, *, seed: int, task: str, scale: float = 1.0) -> Sample:
    """Render the content of instance ``index`` into a forced (h, w) frame at ``scale`` (benchmarks)."""
    check_task(task)
    _check_scale(scale)
    full_h, full_w = max(1, round(h / scale)), max(1, round(w / scale))
    scene = build_scene(index, seed=seed, task=task, full_h=full_h, full_w=full_w)
    return draw(scene, Frame(h, w, full_h, full_w)).sample
