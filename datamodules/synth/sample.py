"""What one rendered raster hands to the rest of the project: the image, its label and the curve side channel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class CurveInfo:
    """How one plotted trace maps track position to a physical value (docs/generator.md, 'Curve types and scales').

    Attributes:
        kind: curve type preset: "GR", "SP", "CALI", "RES_DEEP", "RES_MED", "RES_SHALLOW", "NPHI", "RHOB",
            "DT"; "GENERIC" for hand-built samples.
        scale: "lin" or "log".
        left: value at the track's left scale edge (position 0, the bottom row of the track band).
        right: value at the right scale edge (position 1, the top row); reversed scales have right < left.
        offscale: what happens when the value leaves the track: "clip" (runs along the border), "wrap"
            (re-enters at the other edge, one lap further), "backup" (clipped, and a second trace on the
            shifted scale carries the overflow).
        backup_of: index (into the sample's curves) of the primary this trace backs up, or -1. A backup is
            drawn dashed or dotted, so under the style rule its multiclass label is class 2.
        style: "solid", "light" (solid, lighter and thinner), "long", "short", "dot" or "dashdot".
    """

    kind: str
    scale: str
    left: float
    right: float
    offscale: str
    backup_of: int
    style: str

    @overload
    def value(self, pos: float, lap: int = 0) -> np.float64: ...
    @overload
    def value(self, pos: npt.NDArray[Any], lap: npt.NDArray[np.integer[Any]] | int = 0) -> npt.NDArray[np.float64]: ...
    def value(
        self, pos: npt.NDArray[Any] | float, lap: npt.NDArray[np.integer[Any]] | int = 0
    ) -> npt.NDArray[np.float64] | np.float64:
        """Physical value at track position ``pos`` (0 = left edge) on wrap lap ``lap``."""
        p = np.asarray(pos, np.float64) + lap
        if self.scale == "log":
            return self.left * (self.right / self.left) ** p
        return self.left + p * (self.right - self.left)

    def position(self, value: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Track position of a physical value, before any clip or wrap (may leave [0, 1])."""
        v = np.asarray(value, np.float64)
        if self.scale == "log":
            # declared: numpy types np.log of a Python float as Any, which makes the quotient Any
            pos: npt.NDArray[np.float64] = np.log(np.maximum(v, 1e-12) / self.left) / np.log(self.right / self.left)
            return pos
        return (v - self.left) / (self.right - self.left)


GENERIC = CurveInfo("GENERIC", "lin", 0.0, 1.0, "clip", -1, "solid")


@dataclass(frozen=True)
class Sample:
    """One rendered raster with its exact labels and the per-curve side channel.

    In a track band (top row, bottom row), track position ``pos`` is plotted at row
    ``bottom - pos * (bottom - top)`` plus that column's geometric offset (skew, feed wander, registration).

    Shape:
        image, label: (H, W) uint8. image 255 = paper, 0 = ink. label binary {0, 1} or multiclass {0, 1, 2};
            255 (``IGNORE_INDEX``) = ink that is not visibly a curve (faded, binarised away, under a stamp,
            clipped onto a track border) and torn paper.
        curve_rows: (K, W) float32, the centreline row of curve k as plotted; NaN where it is absent (not
            logged, pen-up gap, header and scale stack).
        curve_scored: (K, W) bool, columns where curve k is visible as itself: pen down and inked, none of its
            stroke ignored, not clipped onto a border, >= 3 columns from a wrap jump, pen-up edge or splice.
            In every scored column the true point itself is inked: a label pixel of the curve's class lies
            within half a pixel of its centreline (so a perfect prediction reaches every scored column).
        curve_laps: (K, W) int8, wrap lap per column (0 = on scale); see ``CurveInfo.value``.
        curve_classes: (K,) int64, the label class of each curve (binary: 1; multiclass: 1 solid and dark,
            2 dashed, dotted or lighter).
        curve_tracks: (K, 2) float32, (top row, bottom row) of each curve's track.
        curves: K ``CurveInfo``.

    The last three side-channel fields may be omitted when building a sample by hand (tests, benchmarks):
    ``curve_scored`` then defaults to the finite columns of ``curve_rows``, ``curve_laps`` to 0 and
    ``curves`` to K generic linear 0..1 clip curves.
    """

    image: npt.NDArray[np.uint8]
    label: npt.NDArray[np.uint8]
    curve_rows: npt.NDArray[np.float32]
    curve_classes: npt.NDArray[np.int64]
    curve_tracks: npt.NDArray[np.float32]
    # None is an __init__-only "derive it" sentinel that __post_init__ replaces, so the fields are never None
    # afterwards; a dataclass field cannot say "Optional in __init__ only", hence the ignores.
    curve_scored: npt.NDArray[np.bool_] = field(default=None)  # type: ignore[arg-type]
    curve_laps: npt.NDArray[np.int8] = field(default=None)  # type: ignore[arg-type]
    curves: tuple[CurveInfo, ...] = field(default=None)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if self.curve_scored is None:
            object.__setattr__(self, "curve_scored", np.isfinite(self.curve_rows))
        if self.curve_laps is None:
            object.__setattr__(self, "curve_laps", np.zeros(self.curve_rows.shape, np.int8))
        if self.curves is None:
            object.__setattr__(self, "curves", (GENERIC,) * len(self.curve_classes))
