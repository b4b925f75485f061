"""Sparse rasterising: x-monotone strokes column by column, horizontal line profiles, stamps, the noise bank.

All writes go to a transmittance buffer T (1 = no ink): a layer of opacity a composites as T *= 1 - a,
which is the ``1 - (1 - a)(1 - b)`` rule on ink opacity.

Scene geometry lives in full-scale units (the scale-1.0 raster); ``Frame`` maps it onto the output raster,
so a scale-s render is the same scene drawn smaller.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar, overload

import numpy as np
import numpy.typing as npt

_BANK_SEED = 20240611
BANK_SHAPE = (256, 8192)

_Float = TypeVar("_Float", bound=np.floating[Any])


@dataclass(frozen=True)
class Frame:
    """Full-scale (H, W) scene coordinates -> output (h, w) raster. Pixel centres map onto pixel centres.

    ``blur`` is the scanner's optical blur (full-scale px); every layer adds it to its edge softness, so the
    blur is applied in vector space and labels stay exact.
    """

    h: int
    w: int
    full_h: int
    full_w: int
    blur: float = 0.0

    @property
    def sx(self) -> float:
        return self.w / self.full_w

    @property
    def sy(self) -> float:
        return self.h / self.full_h

    @property
    def s(self) -> float:
        """The length scale (line widths, font sizes)."""
        return 0.5 * (self.sx + self.sy)

    def soft(self, soft: float) -> float:
        """Output edge softness (px) of a layer drawn with full-scale softness ``soft``, scanner blur added."""
        return max(0.3, float(np.hypot(soft, self.blur)) * self.s)

    def shift(self, dy: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(w,) output row offset of a full-scale (W,) row-offset field (skew, wander)."""
        return dy[self.nearest()] * self.sy

    @overload
    def row(self, r: float) -> float: ...
    @overload
    def row(self, r: npt.NDArray[_Float]) -> npt.NDArray[_Float]: ...
    def row(self, r: npt.NDArray[np.floating[Any]] | float) -> npt.NDArray[np.floating[Any]] | float:
        return (r + 0.5) * self.sy - 0.5

    @overload
    def col(self, c: float) -> float: ...
    @overload
    def col(self, c: npt.NDArray[_Float]) -> npt.NDArray[_Float]: ...
    def col(self, c: npt.NDArray[np.floating[Any]] | float) -> npt.NDArray[np.floating[Any]] | float:
        return (c + 0.5) * self.sx - 0.5

    def centres(self) -> npt.NDArray[np.float64]:
        """(w,) full-scale x of each output column centre."""
        return (np.arange(self.w, dtype=np.float64) + 0.5) / self.sx - 0.5

    def nearest(self) -> npt.NDArray[np.int64]:
        """(w,) index of the full-scale column nearest each output column centre."""
        return np.clip(np.rint(self.centres()), 0, self.full_w - 1).astype(np.int64)

    def any_in_footprint(self, flag: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """(W,) bool at full scale -> (w,) bool: True where any full-scale column under the output column is."""
        out = flag[self.nearest()].copy()
        if self.sx < 1.0:
            owner = self._owner()
            out |= np.bincount(owner, weights=flag, minlength=self.w)[: self.w] > 0
        return out

    def _owner(self) -> npt.NDArray[np.int64]:
        return np.clip(((np.arange(self.full_w) + 0.5) * self.sx).astype(np.int64), 0, self.w - 1)


@dataclass(frozen=True)
class Path:
    """An x-monotone polyline on the output raster: per column its centre, the rows where it enters and leaves
    the column, and the row extent it sweeps (including spikes narrower than the column).

    Shapes: all (w,) float32 except connect (w - 1,) bool. yc is NaN where the path is absent.
    """

    yc: npt.NDArray[np.float32]
    yl: npt.NDArray[np.float32]
    yr: npt.NDArray[np.float32]
    lo: npt.NDArray[np.float32]
    hi: npt.NDArray[np.float32]
    connect: npt.NDArray[np.bool_]


def sample_pieces(
    y: npt.NDArray[np.float64], seg: npt.NDArray[np.int64], xf: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Sample a piecewise curve at fractional columns: linear between neighbours of the same piece, else the
    nearer neighbour (never across a pen-up or jump). Returns values (NaN where absent) and piece ids.

    Shapes: y, seg (W,); xf and both results (n,).
    """
    w = y.size
    i0 = np.clip(np.floor(xf).astype(np.int64), 0, w - 1)
    i1 = np.minimum(i0 + 1, w - 1)
    fr = np.clip(xf - i0, 0.0, 1.0)
    near = np.where(fr < 0.5, i0, i1)
    pair = (seg[i0] == seg[i1]) & np.isfinite(y[i0]) & np.isfinite(y[i1])
    return np.where(pair, y[i0] + fr * (y[i1] - y[i0]), y[near]), seg[near]


def resample_path(y: npt.NDArray[np.float64], seg: npt.NDArray[np.int64], frame: Frame) -> Path:
    """Resample a full-scale x-monotone curve onto the output columns.

    Args:
        y: (W,) full-scale row per full-scale column, NaN where absent.
        seg: (W,) int64, non-decreasing piece id; neighbours with different ids are not joined (pen-up, wrap
            jump, splice).
    """
    valid = np.isfinite(y)
    yf = np.where(valid, y, 0.0)
    yc, segc = sample_pieces(y, seg, frame.centres())
    okc = np.isfinite(yc)
    yc = np.nan_to_num(yc)
    ye = np.nan_to_num(sample_pieces(y, seg, np.arange(frame.w + 1, dtype=np.float64) / frame.sx - 0.5)[0])
    connect = okc[:-1] & okc[1:] & (segc[:-1] == segc[1:])
    yl = yc.copy()
    yr = yc.copy()
    yl[1:] = np.where(connect, ye[1:-1], yc[1:])
    yr[:-1] = np.where(connect, ye[1:-1], yc[:-1])
    lo = np.minimum(np.minimum(yl, yr), yc)
    hi = np.maximum(np.maximum(yl, yr), yc)
    if frame.sx < 1.0:  # columns narrower than the output pixel: keep spikes that fall between centres
        owner = frame._owner()
        same = valid & (seg == segc[owner])
        inner = np.where(same, yf, yc[owner])
        starts = np.searchsorted(owner, np.arange(frame.w))
        lo = np.minimum(lo, np.minimum.reduceat(inner, starts))
        hi = np.maximum(hi, np.maximum.reduceat(inner, starts))
    nan = ~okc
    out = [frame.row(a).astype(np.float32) for a in (yc, yl, yr, lo, hi)]
    for a in out:
        a[nan] = np.nan
    p_yc, p_yl, p_yr, p_lo, p_hi = out
    return Path(p_yc, p_yl, p_yr, p_lo, p_hi, connect=connect)


@dataclass(frozen=True)
class Pen:
    """A dash pattern on arc length (output pixels): ink where ((arc + phase) / period) mod 1 < duty, plus
    an optional dot at [dot_at, dot_at + dot_len) for dash-dot."""

    period: float
    duty: float
    phase: float
    dot_at: float = -1.0
    dot_len: float = 0.0

    def down(self, arc: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        f = np.mod((arc + self.phase) / self.period, 1.0)
        m = f < self.duty
        if self.dot_at >= 0:
            m |= (f >= self.dot_at) & (f < self.dot_at + self.dot_len)
        return m


def arc_lengths(path: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(w,) arc length of the path at each column's entry, centre and exit (output pixels)."""
    ok = np.isfinite(path.yc)
    l1 = np.where(ok, np.hypot(0.5, np.nan_to_num(path.yc - path.yl)), 0.0)
    l2 = np.where(ok, np.hypot(0.5, np.nan_to_num(path.yr - path.yc)), 0.0)
    a_left = np.concatenate(([0.0], np.cumsum(l1 + l2)[:-1]))
    return a_left, a_left + l1, a_left + l1 + l2


@dataclass(frozen=True)
class Stroke:
    """Pixels touched by a stroke: flat indices (unique) into the (h, w) raster, coverage and pen state.

    Shapes: all (N,). ``ink = coverage * down`` is the stroke's opacity before tone; the label covers
    ``(coverage >= 0.5) & down``.
    """

    flat: npt.NDArray[np.int64]
    cols: npt.NDArray[np.intp]
    rows: npt.NDArray[np.int64]
    coverage: npt.NDArray[np.float32]
    down: npt.NDArray[np.bool_]


def stroke(path: Path, hw: float, soft: float, pen: Pen | None, h: int, w: int) -> Stroke:
    """Rasterise an x-monotone path of half-width ``hw`` with anti-aliased edges of width ``soft``.

    Column x covers rows [lo - hw, hi + hw] (the rows the path sweeps in that column); coverage is
    clip(0.5 - d / (2 soft), 0, 1) for d the signed row distance outside that run, so coverage >= 0.5 is
    exactly the run. A dashed pen is evaluated per pixel on the arc length where the path crosses that pixel's
    row, so a steep edge stays dashed. Cost O(ink pixels).
    """
    cols = np.flatnonzero(np.isfinite(path.yc))
    lo = path.lo[cols] - hw
    hi = path.hi[cols] + hw
    r0 = np.clip(np.floor(lo - soft), 0, h - 1).astype(np.int64)
    r1 = np.clip(np.ceil(hi + soft), 0, h - 1).astype(np.int64)
    n = r1 - r0 + 1
    total = int(n.sum())
    start = np.cumsum(n) - n
    rows = np.repeat(r0 - start, n) + np.arange(total)
    rr = rows.astype(np.float32)
    d = np.maximum(np.repeat(lo, n) - rr, rr - np.repeat(hi, n))
    cov = np.clip(0.5 - d / (2.0 * soft), 0.0, 1.0).astype(np.float32)
    keep = cov > 0
    rows, rr, cov = rows[keep], rr[keep], cov[keep]
    which = np.repeat(np.arange(cols.size), n)[keep]
    pc = cols[which]
    if pen is None:
        down = np.ones(rows.size, bool)
    else:
        a_l, a_c, a_r = (a[pc] for a in arc_lengths(path))
        yl, yc, yr = (a[pc] for a in (path.yl, path.yc, path.yr))
        e1, d1 = _segment_pen(rr, yl, yc, a_l, a_c, pen)
        e2, d2 = _segment_pen(rr, yc, yr, a_c, a_r, pen)
        down = (d1 & (e1 <= e2)) | (d2 & (e2 <= e1))  # the nearer half-segment decides; both where they overlap
    return Stroke(rows * w + pc, pc, rows, cov, down)


def _segment_pen(
    rr: npt.NDArray[np.float32],
    y0: npt.NDArray[np.float32],
    y1: npt.NDArray[np.float32],
    a0: npt.NDArray[np.float64],
    a1: npt.NDArray[np.float64],
    pen: Pen,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Row distance of each pixel from a half-segment's row span, and the pen state where it crosses that row."""
    dy = y1 - y0
    steep = np.abs(dy) > 1e-6
    t = np.where(steep, np.clip((rr - y0) / np.where(steep, dy, 1.0), 0.0, 1.0), 0.5)
    dist = np.maximum(np.maximum(np.minimum(y0, y1) - rr, rr - np.maximum(y0, y1)), 0.0)
    return dist, pen.down(a0 + t * (a1 - a0))


def line_profile(h: int, lines: list[tuple[float, float, float]], soft: float) -> npt.NDArray[np.float32]:
    """(h,) transmittance of horizontal lines given as (row, half-width, opacity), anti-aliased."""
    prof = np.ones(h, np.float32)
    r = np.arange(h, dtype=np.float32)
    for row, hw, a in lines:
        lo, hi = max(0, int(row - hw - soft - 1)), min(h, int(row + hw + soft + 2))
        if lo >= hi:
            continue
        d = np.abs(r[lo:hi] - row) - hw
        cov = np.clip(0.5 - d / (2.0 * soft), 0.0, 1.0)
        prof[lo:hi] *= 1.0 - a * cov
    return prof


SUBPIXEL = 4  # horizontal lines follow the wander in quarter pixels, so no seam where it crosses a half pixel


def draw_lines_wandering(
    t: npt.NDArray[np.float32],
    lines: list[tuple[float, float, float]],
    soft: float,
    dy: npt.NDArray[np.float32],
    cols: npt.NDArray[np.bool_],
) -> None:
    """Horizontal lines (row, half-width, opacity) displaced by ``dy`` (w,) rows, on the columns where ``cols``
    (w,) is True: t[r + dy[x], x] *= profile[r].

    Columns are grouped into runs of constant wander (in 1/SUBPIXEL px); each run gets the anti-aliased
    profile for its sub-pixel offset through basic slicing, no fancy indexing. O(H * W).
    """
    h, _ = t.shape
    profs = [line_profile(h, [(r + k / SUBPIXEL, hw, a) for r, hw, a in lines], soft) for k in range(SUBPIXEL)]
    rows = np.flatnonzero(np.minimum.reduce(profs) < 1.0)
    if rows.size == 0:
        return
    ra, rb = int(rows[0]), int(rows[-1]) + 1
    q = np.where(cols, np.floor(dy * SUBPIXEL).astype(np.int64), np.iinfo(np.int64).min)
    cuts = np.concatenate(([0], np.flatnonzero(np.diff(q)) + 1, [q.size]))
    for a, b in itertools.pairwise(cuts.tolist()):
        if not cols[a]:
            continue
        s, k = divmod(int(q[a]), SUBPIXEL)
        lo, hi = max(0, ra + s), min(h, rb + s)
        if lo < hi:
            t[lo:hi, a:b] *= profs[k][lo - s : hi - s, None]


def stamp(t: npt.NDArray[np.float32], mask: npt.NDArray[np.float32], r: int, c: int, opacity: float) -> None:
    """t[r:, c:] *= 1 - opacity * mask, clipped to the frame."""
    h, w = t.shape
    mh, mw = mask.shape
    r0, c0 = max(r, 0), max(c, 0)
    r1, c1 = min(r + mh, h), min(c + mw, w)
    if r0 < r1 and c0 < c1:
        t[r0:r1, c0:c1] *= 1.0 - opacity * mask[r0 - r : r1 - r, c0 - c : c1 - c]


@cache
def noise_bank() -> npt.NDArray[np.float32]:
    """Constant N(0, 1) noise (256, 8192) float32 from a fixed seed; per-instance offsets pick windows."""
    bank = np.random.default_rng(_BANK_SEED).standard_normal(BANK_SHAPE, dtype=np.float32)
    bank.flags.writeable = False
    return bank


def add_bank_noise(img: npt.NDArray[np.float32], sigma: float, rng: np.random.Generator) -> None:
    """img += sigma * noise, tiled from the bank with random window offsets (in place)."""
    bank = noise_bank()
    bh, bw = BANK_SHAPE
    th, tw = bh // 2, bw // 2
    h, w = img.shape
    for r in range(0, h, th):
        for c in range(0, w, tw):
            hh, ww = min(th, h - r), min(tw, w - c)
            r0 = int(rng.integers(0, bh - hh + 1))
            c0 = int(rng.integers(0, bw - ww + 1))
            tile = img[r : r + hh, c : c + ww]
            tile += sigma * bank[r0 : r0 + hh, c0 : c0 + ww]


def smooth_profile(rng: np.random.Generator, n: int, knots: int, lo: float, hi: float) -> npt.NDArray[np.float32]:
    """(n,) float32 piecewise-linear profile through ``knots`` uniform values in [lo, hi]."""
    k = max(2, knots)
    vals = rng.uniform(lo, hi, size=k)
    return np.interp(np.linspace(0.0, k - 1.0, n), np.arange(k), vals).astype(np.float32)
