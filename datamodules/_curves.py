"""Curve signals (shared lithology, per-curve transform, off-scale handling, gaps) and curve styles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from datamodules._scene import Geometry, Layout

_STYLES = ("solid", "long", "short", "dot", "dashdot")


@dataclass(frozen=True)
class Curve:
    """One plotted curve: geometry per column, stroke style and label class."""

    rows: np.ndarray  # (W,) float32 centreline row, NaN where absent
    connect: np.ndarray  # (W - 1,) bool, column x joined to x + 1 (False at wrap laps)
    pen: np.ndarray  # (W,) bool dash pattern (True = ink)
    track: tuple[float, float]
    cls: int
    style: str
    hw: float
    soft: float
    dark: float  # (1 - tone) * opacity


def lithology(rng: np.random.Generator, w: int, scale: float) -> np.ndarray:
    """(W,) blocky shale fraction in [0, 1], smoothed by the tool response."""
    t_med = max(2.0, rng.uniform(10, 120) * scale)
    n = int(4 * w / t_med) + 8
    thick = np.maximum(1, np.rint(rng.lognormal(np.log(t_med), 0.8, size=n))).astype(np.int64)
    conc = rng.uniform(0.5, 0.8)
    vals = rng.beta(conc, conc, size=n)
    same = rng.random(n) < rng.uniform(0, 0.5)
    same[0] = False
    vals = vals[np.maximum.accumulate(np.where(same, 0, np.arange(n)))]
    v = np.repeat(vals, thick)
    if v.size < w:
        v = np.pad(v, (0, w - v.size), mode="edge")
    return gaussian_filter1d(v[:w], max(0.5, rng.uniform(1, 6) * scale)).astype(np.float32)


def _signal(rng: np.random.Generator, vsh: np.ndarray, scale: float) -> np.ndarray:
    """Track-relative position s(x) of one curve (may leave [0, 1])."""
    w = vsh.size
    x = np.arange(w, dtype=np.float32)
    u = x / max(1, w - 1)
    s = rng.uniform(0.2, 0.8) + rng.uniform(0.3, 0.9) * rng.choice([-1.0, 1.0]) * (vsh - 0.5)
    s = s + rng.uniform(-0.2, 0.2) * (u if rng.random() < 0.5 else u * u)
    for _ in range(3):
        a, p, f = rng.uniform(0, 0.05), rng.uniform(200, 4000) * scale, rng.uniform(0, 2 * np.pi)
        s = s + a * np.sin(2 * np.pi * x / max(p, 4.0) + f)
    sig = rng.uniform(0, 0.03)
    if sig > 0:
        n = gaussian_filter1d(rng.standard_normal(w).astype(np.float32), rng.uniform(0.5, 2))
        s = s + sig * n / max(1e-6, float(n.std()))
    for _ in range(int(rng.poisson(rng.uniform(0, 8) * w / 10000 / max(scale, 1e-3)))):
        c, half = int(rng.integers(0, w)), max(1, round(rng.uniform(1, 6) * scale / 2))
        s[max(0, c - half) : c + half] += rng.normal(0, 0.3)
    return s.astype(np.float32)


def _pen(rng: np.random.Generator, rows: np.ndarray, style: str, scale: float) -> np.ndarray:
    """(W,) dash mask on arc length."""
    if style == "solid":
        return np.ones(rows.size, bool)
    dy = np.diff(np.nan_to_num(rows), prepend=np.nan_to_num(rows[:1]))
    arc = np.cumsum(np.sqrt(1.0 + np.minimum(dy * dy, 1e4)))
    lo, hi, dmin, dmax = {
        "long": (12, 30, 0.5, 0.8),
        "short": (6, 12, 0.5, 0.7),
        "dot": (3, 6, 0.3, 0.5),
        "dashdot": (16, 30, 0.45, 0.55),
    }[style]
    period = max(3.0, rng.uniform(lo, hi) * scale)
    duty = rng.uniform(dmin, dmax)
    ph = ((arc + rng.uniform(0, period)) % period) / period
    pen = ph < duty
    if style == "dashdot":
        pen |= (ph > 0.7) & (ph < 0.7 + max(0.12, 1.0 / period))
    return pen


def _span_mask(rng: np.random.Generator, w: int, header_w: int, scale: float) -> np.ndarray:
    """(W,) True where the curve is logged (not before start/after end, not in a pen-up gap, not header)."""
    on = np.ones(w, bool)
    on[:header_w] = False
    if rng.random() < 0.3:
        on[: int(rng.uniform(0, 0.3) * w)] = False
        on[int(rng.uniform(0.7, 1.0) * w) :] = False
    for _ in range(int(rng.integers(0, 4))):
        g0, glen = int(rng.integers(0, w)), max(1, round(rng.uniform(10, 200) * scale))
        on[g0 : g0 + glen] = False
    return on


def _style(rng: np.random.Generator, task: str, k: int, binarised: bool, scale: float) -> tuple:
    """(style, hw, soft, dark) per the identity rule: C1 solid and dark, C2 dashed/dotted or lighter."""
    soft = max(0.3, rng.uniform(0.5, 1.5) * scale)
    if task == "multiclass" and k == 0:
        return "solid", max(0.5, rng.uniform(0.7, 1.6) * scale), soft, (1 - rng.uniform(0, 0.15)) * rng.uniform(0.85, 1)
    if task == "multiclass":
        options = ["long", "short", "dot", "dashdot"] + ([] if binarised else ["light", "light"])
        style = str(rng.choice(options))
        if style == "light":
            dark = (1 - rng.uniform(0.3, 0.45)) * rng.uniform(0.6, 0.8)
            return "solid", max(0.5, rng.uniform(0.5, 1.0) * scale), soft, dark
        return style, max(0.5, rng.uniform(0.5, 1.6) * scale), soft, (1 - rng.uniform(0, 0.45)) * rng.uniform(0.6, 1)
    style = str(rng.choice(_STYLES, p=[0.5, 0.15, 0.15, 0.1, 0.1]))
    return style, max(0.5, rng.uniform(0.5, 1.6) * scale), soft, (1 - rng.uniform(0, 0.45)) * rng.uniform(0.6, 1)


def make_curves(
    rng: np.random.Generator, task: str, lay: Layout, geo: Geometry, w: int, scale: float, binarised: bool
) -> list[Curve]:
    """Curves in side-channel order (class 1 before class 2 in multiclass)."""
    n = 2 if task == "multiclass" else int(rng.choice([1, 2, 3, 4], p=[0.2, 0.4, 0.3, 0.1]))
    nt = len(lay.tracks)
    if task == "multiclass":
        t0 = int(rng.integers(0, nt))
        t1 = t0 if nt == 1 or rng.random() < 0.5 else int((t0 + rng.integers(1, nt)) % nt)
        track_ids = [t0, t1]
    else:
        track_ids = [int(v) for v in rng.integers(0, nt, size=n)]
    vsh = lithology(rng, w, scale)
    x = np.arange(w, dtype=np.float32)
    x_src = np.clip(x - geo.stretch - geo.dx_curve, 0, w - 1)
    curves = []
    for k in range(n):
        s = np.interp(x_src, x, _signal(rng, vsh, scale)).astype(np.float32)
        mode = str(rng.choice(["clip", "wrap", "backup"], p=[0.6, 0.25, 0.15]))
        connect = np.ones(max(0, w - 1), bool)
        if mode == "wrap":
            lap = np.floor(s)
            s = s - lap
            connect = lap[1:] == lap[:-1]
        else:  # backup traces are not drawn separately yet: clip like the primary
            s = np.clip(s, 0.0, 1.0)
        top, bot = lay.tracks[track_ids[k]]
        rows = np.clip(bot - s * (bot - top) + geo.dy_curve, top, bot).astype(np.float32)
        rows[~_span_mask(rng, w, lay.header_w, scale)] = np.nan
        style, hw, soft, dark = _style(rng, task, k, binarised, scale)
        cls = k + 1 if task == "multiclass" else 1
        curves.append(Curve(rows, connect, _pen(rng, rows, style, scale), (top, bot), cls, style, hw, soft, dark))
    return curves
