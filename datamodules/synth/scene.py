"""The page: tracks and what they hold, depth band, header, scale stacks, and the geometric distortion field.

Everything here is in full-scale units (the scale-1.0 raster), drawn independently of the render scale.

Orientation (docs/generator.md, 'Orientation'): the printed page is turned 90 degrees counter-clockwise, so
depth runs along the width, the header and scale stacks sit at the left end, track 1 (page left) is the
bottom band, and a track's left scale edge (position 0) is its bottom row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar, overload

import numpy as np
import numpy.typing as npt

# What a track holds (docs/generator.md, 'Layout'): track 1 carries GR/SP/caliper on a linear grid;
# resistivity goes on a log grid; porosity (neutron-density) and sonic on linear grids.
ROLE_SCALE = {"T1": "lin", "RES": "log", "POR": "lin", "SON": "lin"}
_ROLE_SETS = {
    1: ((("T1",), 0.5), (("RES",), 0.30), (("POR",), 0.2)),  # a lone sonic track would hold one curve
    2: ((("T1", "RES"), 0.55), (("T1", "POR"), 0.30), (("T1", "SON"), 0.15)),
    3: ((("T1", "RES", "POR"), 0.70), (("T1", "RES", "SON"), 0.15), (("T1", "POR", "SON"), 0.15)),
}
_Float = TypeVar("_Float", bound=np.floating[Any])


@dataclass(frozen=True)
class Track:
    """One horizontal track band (full-scale rows; top < bottom) and its grid."""

    top: float
    bottom: float
    role: str  # "T1" | "RES" | "POR" | "SON"
    scale: str  # "lin" | "log"
    decades: int  # log decades (0 on linear tracks)

    @overload
    def row(self, pos: float) -> float: ...
    @overload
    def row(self, pos: npt.NDArray[_Float]) -> npt.NDArray[_Float]: ...
    def row(self, pos: npt.NDArray[np.floating[Any]] | float) -> npt.NDArray[np.floating[Any]] | float:
        """Full-scale row of track position ``pos`` (0 = left scale edge = bottom row), before distortion."""
        return self.bottom - pos * (self.bottom - self.top)


@dataclass(frozen=True)
class Layout:
    """Bands (rows) and the header width (columns), full scale. ``tracks`` is listed bottom (track 1) up."""

    full_h: int
    full_w: int
    tracks: tuple[Track, ...]
    depth_band: tuple[float, float] | None
    header_w: float
    rotate_text: bool


@dataclass(frozen=True)
class Geometry:
    """Geometric distortion, applied to vector geometry before rasterising (labels stay exact).

    A small rotation appears as a row shear (its column term, at most |sin(theta)| * H < 0.6 px, is below
    the stroke width and left out). Shapes: (W,) float32, full scale.
    """

    dy_grid: npt.NDArray[np.float32]  # row offset of grid lines and text: rotation + feed wander
    dy_curve: npt.NDArray[np.float32]  # row offset of curves: dy_grid + curve-to-grid mis-registration
    stretch: npt.NDArray[np.float32]  # depth-axis stretch: column x shows undistorted depth x - stretch[x]
    dx_curve: float  # curve-to-grid mis-registration along the depth axis


@dataclass(frozen=True)
class Stacks:
    """Curve-name and scale stacks (full-scale columns): one at the left end, maybe one repeated further on.

    Curves and depth grid lines are not drawn over a stack.
    """

    regions: tuple[tuple[float, float], ...]  # (x0, x1) per stack
    entry_w: float  # width of one curve's entry

    def blank(self, w: int, header_w: float) -> npt.NDArray[np.bool_]:
        """(W,) bool: full-scale columns where no curve or depth grid is drawn (header and stacks)."""
        x = np.arange(w)
        out = x < max(header_w, self.regions[0][1])  # the first stack follows the header
        for x0, x1 in self.regions[1:]:
            out |= (x >= x0) & (x < x1)
        return out


def make_layout(rng: np.random.Generator, full_h: int, full_w: int) -> Layout:
    n_tracks = int(rng.choice([1, 2, 3], p=[0.25, 0.35, 0.40]))
    sets = _ROLE_SETS[n_tracks]
    roles = sets[int(rng.choice(len(sets), p=[p for _, p in sets]))][0]
    place = str(rng.choice(["mid", "top", "none"], p=[0.6, 0.25, 0.15]))
    m_top, m_bot = rng.uniform(0.01, 0.05, size=2) * full_h
    d_h = rng.uniform(24, 56) if place != "none" else 0.0
    weights = 2.4 * (1.0 + rng.uniform(-0.15, 0.15, size=n_tracks))
    decades = rng.choice([2, 3, 4], size=n_tracks, p=[0.25, 0.25, 0.5])
    has_header = rng.random() < 0.2
    header_w = float(min(rng.uniform(200, 1500), 0.3 * full_w)) if has_header else 0.0
    rotate = bool(rng.random() < 0.7)

    avail = full_h - m_top - m_bot - d_h
    heights = avail * weights / weights.sum()
    # Build bottom-up: track 1 at the bottom; "mid" puts the depth band above track 1, "top" at the top.
    y = float(full_h - m_bot)
    tracks: list[Track] = []
    depth_band = None
    for i, role in enumerate(roles):
        bottom, top = y, y - float(heights[i])
        scale = ROLE_SCALE[role]
        tracks.append(
            Track(top, bottom, role, scale, int(decades[i]) if scale == "log" else 0)
        )  # neighbours share a border
        y = top
        if place == "mid" and i == 0:
            depth_band = (y - d_h, y)
            y -= d_h
    if place == "top":
        depth_band = (y - d_h, y)
    return Layout(full_h, full_w, tuple(tracks), depth_band, header_w, rotate)


def make_geometry(rng: np.random.Generator, full_w: int) -> Geometry:
    x = np.arange(full_w, dtype=np.float64)
    theta = np.deg2rad(rng.uniform(-0.05, 0.05))
    amp, period, phase = rng.uniform(0, 6), rng.uniform(2000, 20000), rng.uniform(0, 2 * np.pi)
    dy = np.sin(theta) * (x - full_w / 2) + amp * np.sin(2 * np.pi * x / period + phase)
    stretch = np.zeros(full_w)
    for a, p, f in zip(rng.uniform(0, 10, 2), rng.uniform(1000, 8000, 2), rng.uniform(0, 2 * np.pi, 2), strict=True):
        stretch += a * np.sin(2 * np.pi * x / p + f)
    mis_y, mis_x = rng.uniform(-3, 3, size=2)
    return Geometry(dy.astype(np.float32), (dy + mis_y).astype(np.float32), stretch.astype(np.float32), float(mis_x))


def place_stacks(rng: np.random.Generator, lay: Layout, per_track: list[int]) -> Stacks:
    """Stacks wide enough for the busiest track: one entry (a style sample and its scale text) per curve."""
    entry_w = rng.uniform(30, 48)
    width = entry_w * max(1, max(per_track)) + rng.uniform(10, 30)
    x0 = lay.header_w + rng.uniform(0, 20)
    regions = [(x0, x0 + width)]
    if rng.random() < 0.25:  # stacks are sometimes repeated along long logs
        at = rng.uniform(0.35, 0.8) * lay.full_w
        if at > x0 + 2 * width and at + width < lay.full_w - 200:
            regions.append((at, at + width))
    return Stacks(tuple(regions), entry_w)
