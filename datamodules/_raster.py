"""Sparse rasterising helpers for the synthetic well logs: column runs, grid profiles, the noise bank.

All writes go to a transmittance buffer T (1 = no ink): a layer of opacity a composites as T *= 1 - a,
which is the ``1 - (1 - a)(1 - b)`` rule on ink opacity.
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np

_BANK_SEED = 20240611
BANK_SHAPE = (256, 8192)


@cache
def noise_bank() -> np.ndarray:
    """Constant N(0, 1) noise (256, 8192) float32 from a fixed seed; per-instance offsets pick windows."""
    bank = np.random.default_rng(_BANK_SEED).standard_normal(BANK_SHAPE, dtype=np.float32)
    bank.flags.writeable = False
    return bank


def add_bank_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> None:
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


def column_runs(
    y: np.ndarray, connect: np.ndarray, pen: np.ndarray, hw: float, soft: float, h: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels touched by an x-monotone stroke, with their coverage.

    Column x covers rows [min(y_x, midpoints to connected neighbours) - hw, max(...) + hw]; coverage is
    clip(0.5 - d / (2 soft), 0, 1) for d the signed row distance outside that run (so coverage >= 0.5 is
    exactly the run). Only columns with finite y and pen down are drawn.

    Args:
        y: (W,) float centreline row per column, NaN where absent.
        connect: (W - 1,) bool, whether column x joins column x + 1 (False at pen-up and wrap breaks).
        pen: (W,) bool pen mask (dash pattern).
    Returns:
        flat indices into an (h, W) array (int64, unique) and coverage (float32), both (N,).
    """
    w = y.size
    ok = np.isfinite(y)
    yf = np.where(ok, y, 0.0).astype(np.float32)
    lo = yf.copy()
    hi = yf.copy()
    if w > 1:
        c = connect & ok[:-1] & ok[1:]
        mid = 0.5 * (yf[:-1] + yf[1:])
        for sl, m in ((slice(None, -1), mid), (slice(1, None), mid)):
            lo[sl] = np.where(c, np.minimum(lo[sl], m), lo[sl])
            hi[sl] = np.where(c, np.maximum(hi[sl], m), hi[sl])
    cols = np.flatnonzero(ok & pen)
    lo = lo[cols] - hw
    hi = hi[cols] + hw
    r0 = np.clip(np.floor(lo - soft), 0, h - 1).astype(np.int64)
    r1 = np.clip(np.ceil(hi + soft), 0, h - 1).astype(np.int64)
    n = r1 - r0 + 1
    total = int(n.sum())
    start = np.cumsum(n) - n
    rows = np.repeat(r0 - start, n) + np.arange(total)
    rr = rows.astype(np.float32)
    d = np.maximum(np.repeat(lo, n) - rr, rr - np.repeat(hi, n))
    cov = np.clip(0.5 - d / (2.0 * soft), 0.0, 1.0).astype(np.float32)
    flat = rows * w + np.repeat(cols, n)
    keep = cov > 0
    return flat[keep], cov[keep]


def line_profile(h: int, lines: list[tuple[float, float, float]], soft: float) -> np.ndarray:
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


def apply_profile_wander(t: np.ndarray, prof: np.ndarray, dy: np.ndarray, x0: int) -> None:
    """t[r + dy[x], x] *= prof[r] for x >= x0, grouping columns into runs of constant integer dy."""
    h, w = t.shape
    rows = np.flatnonzero(prof < 1.0)
    if rows.size == 0 or x0 >= w:
        return
    ra, rb = int(rows[0]), int(rows[-1]) + 1
    g = np.rint(dy[x0:]).astype(np.int64)
    cuts = np.concatenate(([0], np.flatnonzero(np.diff(g)) + 1, [g.size]))
    for a, b in itertools.pairwise(cuts.tolist()):
        s = int(g[a])
        lo, hi = max(0, ra + s), min(h, rb + s)
        if lo < hi:
            t[lo:hi, x0 + a : x0 + b] *= prof[lo - s : hi - s, None]


def smooth_profile(rng: np.random.Generator, n: int, knots: int, lo: float, hi: float) -> np.ndarray:
    """(n,) float32 piecewise-linear profile through `knots` uniform values in [lo, hi]."""
    k = max(2, knots)
    vals = rng.uniform(lo, hi, size=k)
    return np.interp(np.linspace(0.0, k - 1.0, n), np.arange(k), vals).astype(np.float32)


def stamp(t: np.ndarray, mask: np.ndarray, r: int, c: int, opacity: float) -> None:
    """t[r:, c:] *= 1 - opacity * mask, clipped to the frame."""
    h, w = t.shape
    mh, mw = mask.shape
    r0, c0 = max(r, 0), max(c, 0)
    r1, c1 = min(r + mh, h), min(c + mw, w)
    if r0 < r1 and c0 < c1:
        t[r0:r1, c0:c1] *= 1.0 - opacity * mask[r0 - r : r1 - r, c0 - c : c1 - c]
