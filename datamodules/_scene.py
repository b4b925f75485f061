"""Layout, geometry field and the non-label layers (grids, depth numbers, header) of a synthetic log."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules._font import text_bitmap
from datamodules._raster import apply_profile_wander, line_profile, stamp


@dataclass(frozen=True)
class Layout:
    """Vertical bands (rows) and the header width (columns)."""

    tracks: tuple[tuple[float, float], ...]  # (top row, bottom row) per track, top to bottom
    scales: tuple[tuple[str, int], ...]  # ("lin" | "log", decades) per track
    depth_band: tuple[float, float] | None
    header_w: int
    rotate_text: bool


@dataclass(frozen=True)
class Geometry:
    """Geometric distortion, applied to vector geometry before rasterising (labels stay exact)."""

    dy_grid: np.ndarray  # (W,) row offset of grid lines: skew + feed wander
    dy_curve: np.ndarray  # (W,) row offset of curves: dy_grid + mis-registration
    stretch: np.ndarray  # (W,) depth-axis stretch: image column x shows undistorted depth x - stretch[x]
    dx_curve: float  # curve-to-grid mis-registration along the depth axis


def make_layout(rng: np.random.Generator, h: int, w: int, scale: float) -> Layout:
    n_tracks = int(rng.choice([1, 2, 3], p=[0.25, 0.35, 0.40]))
    place = str(rng.choice(["mid", "top", "none"], p=[0.6, 0.25, 0.15]))
    m_top, m_bot = rng.uniform(0.01, 0.05, size=2) * h
    d_h = min(rng.uniform(24, 56) * scale, 0.15 * h) if place != "none" else 0.0
    weights = 2.4 * (1.0 + rng.uniform(-0.15, 0.15, size=n_tracks))
    avail = h - m_top - m_bot - d_h
    heights = avail * weights / weights.sum()
    tracks: list[tuple[float, float]] = []
    depth_band = None
    y = float(m_top)
    for i in range(n_tracks):
        if (place == "top" and i == 0) or (place == "mid" and i == 1):
            depth_band = (y, y + d_h)
            y += d_h
        tracks.append((y, y + float(heights[i]) - 1.0))
        y += float(heights[i])
    if place == "mid" and n_tracks == 1:
        depth_band = (y, y + d_h)
    scales = []
    for _ in range(n_tracks):
        kind = str(rng.choice(["lin", "log", "split"], p=[0.65, 0.30, 0.05]))
        scales.append((kind, int(rng.integers(2, 5))))
    has_header = rng.random() < 0.2
    header_w = int(min(rng.uniform(200, 1500) * scale, 0.4 * w)) if has_header else 0
    rotate = bool(rng.random() < 0.7)
    return Layout(tuple(tracks), tuple(scales), depth_band, header_w, rotate)


def make_geometry(rng: np.random.Generator, w: int, scale: float) -> Geometry:
    x = np.arange(w, dtype=np.float32)
    slope = np.tan(np.deg2rad(rng.uniform(-0.03, 0.03)))
    amp, period, phase = rng.uniform(0, 6) * scale, rng.uniform(2000, 20000) * scale, rng.uniform(0, 2 * np.pi)
    dy = slope * (x - w / 2) + amp * np.sin(2 * np.pi * x / period + phase)
    stretch = np.zeros(w, np.float32)
    for a, p, f in zip(
        rng.uniform(0, 10, 2) * scale, rng.uniform(1000, 8000, 2) * scale, rng.uniform(0, 2 * np.pi, 2), strict=True
    ):
        stretch += a * np.sin(2 * np.pi * x / p + f)
    mis_y, mis_x = rng.uniform(-3, 3, size=2) * scale
    dy = dy.astype(np.float32)
    return Geometry(dy, (dy + mis_y).astype(np.float32), stretch, float(mis_x))


def _value_lines(kind: str, decades: int) -> list[tuple[float, bool]]:
    """Track-relative positions in (0, 1) of value grid lines, and whether each is heavy."""
    if kind == "log":
        out = []
        for d in range(decades):
            for m in range(1, 10):
                out.append(((d + np.log10(m)) / decades, m == 1))
        return [(p, hv) for p, hv in out if 0 < p < 1]
    if kind == "split":  # linear left half, one log decade right half
        lin = [(i / 10, i == 5) for i in range(1, 6)]
        return lin + [(0.5 + 0.5 * np.log10(m), False) for m in range(2, 10)]
    return [(i / 10, i == 5) for i in range(1, 10)]


def draw_grids(
    rng: np.random.Generator, t: np.ndarray, lay: Layout, geo: Geometry, scale: float
) -> tuple[np.ndarray, int]:
    """Horizontal value grids, track borders and vertical depth lines into t. Returns major columns, step."""
    h, w = t.shape
    tone = rng.uniform(0.3, 0.5) if rng.random() < 0.5 else rng.uniform(0.7, 1.0)
    soft = max(0.3, 0.6 * scale)
    lines: list[tuple[float, float, float]] = []
    for (top, bot), (kind, dec) in zip(lay.tracks, lay.scales, strict=True):
        bw = max(0.5, rng.uniform(0.5, 1.5) * scale)
        ba = rng.uniform(0.8, 1.0)
        lines += [(top, bw, ba), (bot, bw, ba)]
        if bot - top < 4:
            continue
        a_min, a_maj = rng.uniform(0.2, 0.6) * tone, rng.uniform(0.5, 0.8) * tone
        hw_maj = max(0.5, rng.uniform(0.5, 1.0) * scale)
        for p, heavy in _value_lines(kind, dec):
            row = bot - p * (bot - top) + rng.normal(0, 0.2)
            lines.append((row, hw_maj if heavy else 0.5, a_maj if heavy else a_min))
    if lay.depth_band is not None:
        lines += [(lay.depth_band[0], 0.5, 0.8), (lay.depth_band[1], 0.5, 0.8)]
    apply_profile_wander(t, line_profile(h, lines, soft), geo.dy_grid, lay.header_w)

    s = rng.uniform(6, 25) * scale
    major_every = int(rng.choice([25, 50]))
    phase = rng.uniform(0, s)
    k = np.arange(int((w + 40) / s) + 2)
    xd = phase + k * s
    xi = np.rint(xd + np.interp(xd, np.arange(w), geo.stretch)).astype(np.int64)
    ok = (xi >= lay.header_w) & (xi < w)
    major = k % major_every == 0
    kinds = [  # (selected lines, spacing in units of s, width px, opacity)
        (major, major_every, rng.uniform(2, 3) * scale, rng.uniform(0.7, 1.0)),
        ((k % 5 == 0) & ~major, 5, rng.uniform(1, 2) * scale, rng.uniform(0.5, 0.8)),
        (k % 5 != 0, 1, 1.0 * scale, rng.uniform(0.2, 0.6)),
    ]
    for sel, every, width, a in kinds:
        if s * every < 3.0:  # too dense at this scale: it would be a grey wash, not lines
            continue
        cols = xi[sel & ok]
        for top, bot in lay.tracks:
            r0, r1 = max(0, round(top)), min(h, round(bot) + 1)
            for j in range(max(1, round(width))):
                c = cols + j
                t[r0:r1, c[c < w]] *= 1.0 - a * tone
    return xi[(k % major_every == 0) & ok], major_every


def draw_depth_numbers(
    rng: np.random.Generator, t: np.ndarray, lay: Layout, major_cols: np.ndarray, scale: float
) -> None:
    if lay.depth_band is None or major_cols.size == 0:
        return
    top, bot = lay.depth_band
    band = bot - top - 2
    step = int(rng.choice([10, 20, 50, 100]))
    start = step * int(rng.uniform(100, 12000) // step)
    a = rng.uniform(0.75, 1.0)
    spacing = float(np.min(np.diff(major_cols))) if major_cols.size > 1 else float(t.shape[1])
    widest = str(start + step * major_cols.size)
    z0 = max(1, round(rng.uniform(2, 4) * scale))
    best = None  # largest zoom that fits, preferring the layout's text orientation
    for rot in (lay.rotate_text, not lay.rotate_text):
        for zoom in range(z0, 0, -1):
            bm = text_bitmap(widest, zoom, rot)
            if bm.shape[0] <= band and bm.shape[1] <= 0.8 * spacing:
                best = (zoom, rot)
                break
        if best is not None:
            break
    if best is None:
        return
    zoom, rot = best
    for i, c in enumerate(major_cols):
        bm = text_bitmap(str(start + step * i), zoom, rot)
        r = round((top + bot) / 2 - bm.shape[0] / 2)
        stamp(t, bm, r, int(c) - bm.shape[1] // 2, a)


_HEADER_WORDS = ("GR 0 150 API", "ILD 0.2 2000", "SP -80 20 MV", "NPHI 45 -15", "RHOB 1.95 2.95", "DT 140 40")


def draw_header(rng: np.random.Generator, t: np.ndarray, lay: Layout, scale: float) -> None:
    if lay.header_w <= 0:
        return
    h, _ = t.shape
    hw = lay.header_w
    rule = max(1, round(2 * scale))
    t[:, max(0, hw - rule) : hw] *= 0.1
    for r in rng.uniform(0, h, size=int(rng.integers(2, 6))):
        t[int(r) : int(r) + rule, :hw] *= 0.2
    zoom = max(1, round(rng.uniform(1.5, 3) * scale))
    for _ in range(int(rng.integers(2, 8))):
        bm = text_bitmap(str(rng.choice(_HEADER_WORDS)), zoom, lay.rotate_text)
        if bm.shape[0] >= h or bm.shape[1] >= hw:
            continue
        stamp(t, bm, int(rng.integers(0, h - bm.shape[0])), int(rng.integers(0, hw - bm.shape[1])), 0.9)
