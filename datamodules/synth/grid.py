"""The printed grid (docs/generator.md, 'Grid'): track borders, linear and logarithmic value lines, depth lines."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from datamodules.synth.raster import Frame, draw_lines_wandering
from datamodules.synth.scene import Geometry, Layout, Track


@dataclass(frozen=True)
class Grid:
    """What later layers need to know about the grid (full-scale units)."""

    major_x: npt.NDArray[np.float64]  # image columns of major depth lines (where depth numbers go)
    major_every: int  # minor spacings per major line (25 or 50)
    borders: tuple[tuple[float, float], ...]  # (row, half-width) of every track border line
    tone: float
    spacing: float = 1.0  # minor depth-line spacing, in undistorted depth coordinate (full-scale px)
    first_major: float = 0.0  # undistorted depth coordinate of the first major line on the page (major_x[0])


@dataclass(frozen=True)
class DepthScale:
    """The depth the page prints: ``start`` (feet or metres) at undistorted depth coordinate ``origin`` (the first
    major line on the page), ``per_px`` depth units per full-scale px of undistorted depth coordinate."""

    unit: str  # "ft" | "m"
    start: float
    origin: float
    per_px: float

    def at(self, xd: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Depth of undistorted depth coordinates ``xd`` (full-scale px)."""
        return self.start + (np.asarray(xd, np.float64) - self.origin) * self.per_px


def value_lines(track: Track) -> list[tuple[float, bool]]:
    """Track positions in (0, 1) of the value grid lines, and whether each is heavy."""
    if track.scale == "log":  # 1..9 x 10^k per decade, heavy at the decades
        dec = track.decades
        return [((d + np.log10(m)) / dec, m == 1) for d in range(dec) for m in range(1, 10) if d or m > 1]
    return [(i / 10, i == 5) for i in range(1, 10)]  # 10 divisions, heavy at the 5th


def draw_grid(
    rng: np.random.Generator,
    t: npt.NDArray[np.float32],
    lay: Layout,
    geo: Geometry,
    frame: Frame,
    blank: npt.NDArray[np.bool_],
) -> Grid:
    """Horizontal lines (polylines following the feed wander) and vertical depth lines into t.

    Args:
        blank: (w,) bool, output columns without grid (header and scale stacks); a grid dropout (p = 0.05)
            adds a stretch of its own.
    """
    s = frame.s
    dropout, d0, d_len = rng.random() < 0.05, rng.uniform(0, lay.full_w), rng.uniform(100, 1500)
    if dropout:  # the plotter skipped the grid for a stretch
        x = np.arange(lay.full_w)
        blank = blank | frame.any_in_footprint((x >= d0) & (x < d0 + d_len))
    tone = rng.uniform(0.3, 0.5) if rng.random() < 0.5 else rng.uniform(0.7, 1.0)  # colour grids print light
    soft = frame.soft(0.6)
    jitter = rng.uniform(0, 0.5)
    lines: list[tuple[float, float, float]] = []  # full-scale (row, half-width, opacity)
    borders: dict[float, float] = {}
    for track in lay.tracks:
        bw, ba = rng.uniform(0.5, 1.5), rng.uniform(0.8, 1.0)
        for row in (track.top, track.bottom):
            if row not in borders:  # neighbouring tracks share a border
                borders[row] = bw
                lines.append((row, bw, ba))
        a_min, a_maj = rng.uniform(0.2, 0.6) * tone, rng.uniform(0.5, 0.8) * tone
        hw_maj = rng.uniform(0.5, 1.0)
        for p, heavy in value_lines(track):
            row = track.row(p) + rng.normal(0, jitter)
            lines.append((row, hw_maj if heavy else 0.5, a_maj if heavy else a_min))
    if lay.depth_band is not None:  # its edges, where they are not track borders already
        lines += [(row, 0.5, 0.5 * tone) for row in lay.depth_band if row not in borders]
    out_lines = [(frame.row(r), max(0.5, hw * s), a * min(1.0, 2 * hw * s)) for r, hw, a in lines]
    dy = frame.shift(geo.dy_grid)
    draw_lines_wandering(t, out_lines, soft, dy, ~blank)

    spacing = rng.uniform(6, 25)
    major_every = int(rng.choice([25, 50]))
    phase = rng.uniform(0, spacing)
    kinds = [  # (every n-th line, width px, opacity): minor 1 px, medium 1-2 px, major 2-3 px
        (major_every, rng.uniform(2, 3), rng.uniform(0.7, 1.0)),
        (5, rng.uniform(1, 2), rng.uniform(0.5, 0.8)),
        (1, 1.0, rng.uniform(0.2, 0.6)),
    ]
    k = np.arange(int((lay.full_w + 40) / spacing) + 2)
    xd = phase + k * spacing
    x_img = xd + np.interp(xd, np.arange(lay.full_w), geo.stretch)  # depth xd is printed at column x_img
    alpha = np.zeros(frame.w, np.float32)  # opacity of the depth line in each output column
    taken = np.zeros(k.size, bool)
    for every, width, a in kinds:
        sel = (k % every == 0) & ~taken
        taken |= sel
        if spacing * every * frame.sx < 2.0:  # denser than 2 px at this scale: a grey wash, not lines
            continue
        wpx = width * frame.sx
        for j in range(max(1, round(wpx))):
            c = np.rint(frame.col(x_img[sel])).astype(np.int64) + j
            c = c[(c >= 0) & (c < frame.w)]
            np.maximum.at(alpha, c, a * tone * min(1.0, wpx))
    alpha[blank] = 0.0
    keep = 1.0 - alpha  # (w,) transmittance of the depth lines; they span each track, shifted with it
    shift = np.rint(dy).astype(np.int64)
    cuts = np.concatenate(([0], np.flatnonzero(np.diff(shift)) + 1, [frame.w]))
    for a, b in itertools.pairwise(cuts.tolist()):  # runs of constant shift: basic slicing only
        d = int(shift[a])
        for track in lay.tracks:
            r0 = max(0, round(frame.row(track.top)) + d)
            r1 = min(frame.h, round(frame.row(track.bottom)) + d + 1)
            if r0 < r1:
                t[r0:r1, a:b] *= keep[None, a:b]
    on_page = (k % major_every == 0) & (x_img >= 0) & (x_img < lay.full_w)
    major = x_img[on_page]
    first = float(xd[on_page][0]) if on_page.any() else float(phase)
    return Grid(major, major_every, tuple(borders.items()), tone, float(spacing), first)
