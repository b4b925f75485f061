"""Line coding of the traces and the multiclass identity rule that follows from it
(docs/generator.md, 'Line coding and classes').

Curves sharing a track are told apart by line coding: the track's primary is usually solid and dark, its
companions dashed, dotted or a lighter solid; backup traces are dashed or dotted. The style rule turns this
into classes: class 1 = solid and dark, class 2 = everything else (so a backup is always class 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules.labels import task_spec
from datamodules.synth.raster import Pen

SECONDARY = ("long", "short", "dot", "dashdot", "light")
_PATTERN = {  # period (full-scale px), duty: docs/generator.md, 'Line coding and classes'
    "long": ((12, 30), (0.5, 0.8)),
    "short": ((6, 12), (0.5, 0.7)),
    "dot": ((4, 6), (0.3, 0.5)),
    "dashdot": ((16, 30), (0.45, 0.55)),
}
MIN_PERIOD = 3.0  # output px: a shorter dash pattern would render as a grey solid line


@dataclass(frozen=True)
class Look:
    """How one trace is drawn, full-scale units. ``dark`` = (1 - tone) * opacity."""

    style: str
    cls: int
    hw: float
    soft: float
    dark: float
    period: float
    duty: float
    phase: float  # fraction of a period

    def pen(self, s: float) -> Pen | None:
        """The dash pattern at length scale ``s`` (None for solid strokes)."""
        if self.style in ("solid", "light"):
            return None
        period = max(MIN_PERIOD, self.period * s)
        if self.style == "dashdot":
            return Pen(period, self.duty, self.phase * period, 0.72, max(0.08, 1.2 / period))
        return Pen(period, self.duty, self.phase * period)

    def half_width(self, s: float) -> float:
        return max(0.5, self.hw * s)


def _look(rng: np.random.Generator, style: str, cls: int) -> Look:
    if style == "solid":
        tone, hw, opacity = rng.uniform(0, 0.15), rng.uniform(0.7, 1.6), rng.uniform(0.85, 1.0)
    elif style == "light":
        tone, hw, opacity = rng.uniform(0.3, 0.45), rng.uniform(0.5, 1.0), rng.uniform(0.6, 0.9)
    elif style == "dot":
        tone, hw, opacity = rng.uniform(0, 0.35), rng.uniform(0.5, 1.1), rng.uniform(0.7, 1.0)
    else:
        tone, hw, opacity = rng.uniform(0, 0.45), rng.uniform(0.5, 1.6), rng.uniform(0.6, 1.0)
    soft = rng.uniform(0.5, 0.9) if style == "dot" else rng.uniform(0.5, 1.5)
    (p_lo, p_hi), (d_lo, d_hi) = _PATTERN.get(style, ((12, 30), (0.5, 0.8)))
    return Look(
        style, cls, hw, soft, (1 - tone) * opacity, rng.uniform(p_lo, p_hi), rng.uniform(d_lo, d_hi), rng.random()
    )


def choose_looks(
    rng: np.random.Generator, tracks: list[int], backup_of: list[int], task: str, binarised: bool
) -> list[Look]:
    """One look per trace, with at least one class-1 and one class-2 trace.

    Args:
        tracks: track index of each trace; backup_of: primary index of each trace, or -1.
        binarised: the raster will be thresholded, so a lighter solid would vanish or turn dark; not used.
    """
    n = len(tracks)
    pool = [s for s in SECONDARY if not (binarised and s == "light")]
    styles: list[str] = [""] * n
    for t in sorted(set(tracks)):
        members = [k for k in range(n) if tracks[k] == t and backup_of[k] < 0]
        free = list(rng.permutation(pool))
        for j, k in enumerate(members):
            styles[k] = "solid" if j == 0 and rng.random() < 0.85 else str(free.pop(0))
    for k in range(n):
        if backup_of[k] >= 0:
            styles[k] = str(rng.choice([s for s in ("long", "short", "dot") if s != styles[backup_of[k]]]))
    primaries = [k for k in range(n) if backup_of[k] < 0]
    if "solid" not in styles:
        styles[primaries[0]] = "solid"
    if all(s == "solid" for s in styles):
        styles[primaries[int(rng.integers(1, len(primaries)))]] = str(rng.choice(pool))
    one_class = len(task_spec(task).curve_classes) == 1  # binary: every curve is class 1
    classes = [1 if one_class or s == "solid" else 2 for s in styles]
    return [_look(rng, s, c) for s, c in zip(styles, classes, strict=True)]
