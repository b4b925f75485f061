"""Things on the page that are not curves (docs/generator.md, 'Shading, hand marks and stamps'): area shading
under the curves, and hand marks and rubber stamps added on top of the print later. All are labelled
background.

Marks are kept as overlays (position + opacity patch) so the visibility pass can tell how much of a curve
still shows through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from datamodules.synth.fonts import font, quantise
from datamodules.synth.raster import Frame, Path, noise_bank
from datamodules.synth.scene import Layout


@dataclass(frozen=True)
class Overlay:
    """Ink opacity ``alpha`` (h, w) float32 placed with its top-left corner at output pixel (row, col)."""

    row: int
    col: int
    alpha: npt.NDArray[np.float32]

    def apply(self, t: npt.NDArray[np.float32]) -> None:
        h, w = t.shape
        ah, aw = self.alpha.shape
        r0, c0, r1, c1 = max(self.row, 0), max(self.col, 0), min(self.row + ah, h), min(self.col + aw, w)
        if r0 < r1 and c0 < c1:
            t[r0:r1, c0:c1] *= 1.0 - self.alpha[r0 - self.row : r1 - self.row, c0 - self.col : c1 - self.col]

    def transmittance_at(self, rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp]) -> npt.NDArray[np.float32]:
        """(N,) transmittance of this overlay at output pixels (rows, cols); 1 outside it."""
        ah, aw = self.alpha.shape
        r, c = rows - self.row, cols - self.col
        inside = (r >= 0) & (r < ah) & (c >= 0) & (c < aw)
        out = np.ones(rows.size, np.float32)
        out[inside] = 1.0 - self.alpha[r[inside], c[inside]]
        return out


def draw_shading(
    rng: np.random.Generator,
    t: npt.NDArray[np.float32],
    lay: Layout,
    frame: Frame,
    fills: list[tuple[int, Path, Path | None, int]],
) -> None:
    """Area shading between a curve and its track's left edge, or between two curves where one crosses the
    other (neutron-density crossover), as a light fill, a hatch or a stipple.

    Args:
        fills: (track index, path a, path b or None for the track's left edge, sign) per candidate; sign +1
            shades where a is right of b (a above b in rows), -1 the other way.
    """
    for ti, a, b, sign in fills:
        keep = rng.random()
        kind = str(rng.choice(["fill", "hatch", "stipple"]))
        opacity, period, slope = rng.uniform(0.08, 0.3), rng.uniform(5, 10), rng.choice([-1.0, 1.0])
        if keep >= (0.5 if b is not None else 0.15):
            continue
        ya = a.yc
        yb = b.yc if b is not None else np.full(frame.w, frame.row(lay.tracks[ti].bottom), np.float32)
        active = np.isfinite(ya) & np.isfinite(yb) & ((ya - yb) * sign < 0)
        if not active.any():
            continue
        lo = np.where(active, np.fmin(ya, yb), np.inf).astype(np.float32)
        hi = np.where(active, np.fmax(ya, yb), -np.inf).astype(np.float32)
        r0, r1 = max(0, int(lo[active].min())), min(frame.h, int(np.ceil(hi[active].max())) + 1)
        rows = np.arange(r0, r1, dtype=np.float32)[:, None]  # (hb, 1)
        inside = (rows >= lo[None, :]) & (rows <= hi[None, :])  # (hb, w)
        p = max(2, round(period * frame.s))
        if kind == "fill":
            factor = np.float32(1.0 - opacity)
        else:  # a periodic pattern tiled over the band: diagonal hatch or a stipple of dots
            i, j = np.arange(p)[:, None], np.arange(p)[None, :]
            tile = (i + slope * j) % p == 0 if kind == "hatch" else (i == 0) & (j == (p // 2))
            inside &= np.tile(tile, (-(-(r1 - r0) // p), -(-frame.w // p)))[: r1 - r0, : frame.w]
            factor = np.float32(1.0 - min(1.0, 3 * opacity))
        band = t[r0:r1]
        band[inside] *= factor


_NOTES = ("TD", "perfs", "DST #1", "csg pt", "core #2", "?", "good show", "wet", "tight", "pay", "lost circ.")
_TOPS = ("MORROW", "ATOKA", "WOLFCAMP", "ARBUCKLE", "MISS.", "PENN", "TOP PAY", "LANSING", "VIOLA", "B. SH.")


def _scribble_points(rng: np.random.Generator, kind: str, cx: float, cy: float, size: float) -> npt.NDArray[np.float64]:
    """(N, 2) full-scale (x, y) of one hand-drawn stroke: a circled interval, a tick or a formation-top line."""
    n = 60
    u = np.linspace(0, 1, n)
    wob = np.cumsum(rng.normal(0, 0.6, (n, 2)), axis=0)
    if kind == "circle":
        ang = 2 * np.pi * u * rng.uniform(1.05, 1.2) + rng.uniform(0, 2 * np.pi)
        rx, ry = size * rng.uniform(1.2, 3.0), size * rng.uniform(0.5, 1.0)
        pts = np.stack([cx + rx * np.cos(ang), cy + ry * np.sin(ang)], axis=1)
    elif kind == "tick":
        pts = np.stack([cx + size * 0.6 * (u - 0.5), cy + size * 0.4 * np.abs(u - 0.3) * 2], axis=1)
    else:  # "line": a formation top drawn across the tracks (constant depth: a vertical line here)
        pts = np.stack([cx + rng.normal(0, 1.5) * u, cy + size * (u - 0.5)], axis=1)
    return pts + wob


def _patch(
    points: list[npt.NDArray[np.float64]], width: float, texts: list[tuple[str, float, float, float]], frame: Frame
) -> tuple[int, int, npt.NDArray[np.float32]]:
    """Draw strokes and texts (full-scale coordinates) at 2x the render scale; return (row, col, coverage)."""
    ss = 2.0
    pts = np.concatenate(points) if points else np.zeros((0, 2))
    anchors = np.array([[x, y] for _, x, y, _ in texts]).reshape(-1, 2)
    allp = np.concatenate([pts, anchors])
    margin = 40.0 + max([sz for *_, sz in texts], default=0.0) * 8
    x0, y0 = allp.min(axis=0) - margin
    x1, y1 = allp.max(axis=0) + margin
    c0, r0 = int(np.floor(frame.col(x0))), int(np.floor(frame.row(y0)))
    wpx, hpx = int(np.ceil(frame.col(x1))) - c0 + 1, int(np.ceil(frame.row(y1))) - r0 + 1
    img = Image.new("L", (max(2, round(wpx * ss)), max(2, round(hpx * ss))), 0)
    draw = ImageDraw.Draw(img)
    lw = max(1, round(width * frame.s * ss))
    for p in points:
        xy = [((frame.col(x) - c0) * ss, (frame.row(y) - r0) * ss) for x, y in p]
        draw.line(xy, fill=255, width=lw, joint="curve")
    for text, x, y, size in texts:
        draw.text(
            ((frame.col(x) - c0) * ss, (frame.row(y) - r0) * ss),
            text,
            font=font(quantise(size * frame.s * ss)),
            fill=255,
            anchor="mm",
        )
    w2, h2 = img.size
    img = img.resize((max(1, w2 // 2), max(1, h2 // 2)), Image.Resampling.BOX)
    return r0, c0, np.asarray(img, dtype=np.float32) / 255.0


def draw_marks(rng: np.random.Generator, lay: Layout, frame: Frame) -> list[Overlay]:
    """Hand marks (p = 0.15: 1-3 circled intervals, ticks, formation tops with names, notes) and a rubber
    stamp (p = 0.08) near an edge. Returns overlays, not yet applied."""
    out: list[Overlay] = []
    w_full, h_full = lay.full_w, lay.full_h
    tracks = lay.tracks
    n_hand = int(rng.integers(1, 4)) if rng.random() < 0.15 else 0
    for _ in range(n_hand):
        kind = str(rng.choice(["circle", "tick", "line", "note"]))
        track = tracks[int(rng.integers(len(tracks)))]
        cx = rng.uniform(lay.header_w + 300, max(lay.header_w + 301, w_full - 100))
        cy = rng.uniform(track.top, track.bottom)
        height = track.bottom - track.top
        width, opacity = rng.uniform(1, 3), rng.uniform(0.35, 0.95)
        size = rng.uniform(14, 28)
        note, top_name, slant = str(rng.choice(_NOTES)), str(rng.choice(_TOPS)), rng.uniform(-20, 20)
        if kind == "note":  # written at a slant
            r, c, cov = _patch([], width, [(note, cx, cy, size)], frame)
            turned = Image.fromarray(np.rint(255 * cov).astype(np.uint8)).rotate(
                slant, resample=Image.Resampling.BILINEAR, expand=True
            )
            r, c = r - (turned.height - cov.shape[0]) // 2, c - (turned.width - cov.shape[1]) // 2
            cov = np.asarray(turned, dtype=np.float32) / 255.0
        elif kind == "line":
            span = tracks[-1].top - tracks[0].bottom
            pts = _scribble_points(rng, "line", cx, 0.5 * (tracks[0].bottom + tracks[-1].top), abs(span))
            r, c, cov = _patch([pts], width, [(top_name, cx + size, tracks[-1].top + 3 * size, size)], frame)
        else:
            pts = _scribble_points(rng, kind, cx, cy, 0.4 * height)
            r, c, cov = _patch([pts], width, [], frame)
        out.append(Overlay(r, c, (opacity * cov).astype(np.float32)))
    if rng.random() < 0.08:
        out.append(_stamp(rng, lay, frame, w_full, h_full))
    return out


_STAMPS = (("RECEIVED",), ("FILE COPY",), ("CONFIDENTIAL",), ("COPY",), ("RECEIVED", "STATE OIL & GAS BD."))


def _stamp(rng: np.random.Generator, lay: Layout, frame: Frame, w_full: int, h_full: int) -> Overlay:
    lines = list(_STAMPS[int(rng.integers(len(_STAMPS)))])
    lines.append(f"{rng.choice(['JAN', 'MAR', 'JUN', 'SEP', 'NOV'])} {rng.integers(1, 29)} 19{rng.integers(55, 99)}")
    size, angle, opacity = (
        rng.uniform(14, 26),
        rng.uniform(-25, 25) + (90 if rng.random() < 0.5 else 0),
        rng.uniform(0.3, 0.8),
    )
    cx = rng.uniform(100, w_full - 100)
    cy = h_full * (rng.uniform(0.05, 0.2) if rng.random() < 0.5 else rng.uniform(0.8, 0.95))
    off = rng.integers(0, 4096, size=2)
    face = font(quantise(max(4.0, size * frame.s)))
    pad = max(2, round(0.4 * size * frame.s))
    # Pillow types getbbox as floats (a stroke width may be fractional); without a stroke FreeType measures
    # whole pixels, so the boxes are ints (which Image.new needs).
    boxes = [cast("tuple[int, int, int, int]", face.getbbox(line)) for line in lines]
    tw = max(b[2] - b[0] for b in boxes) + 2 * pad
    th = sum(b[3] - b[1] + pad for b in boxes) + 2 * pad
    img = Image.new("L", (tw + 2 * pad, th + 2 * pad), 0)
    draw = ImageDraw.Draw(img)
    lw = max(1, round(2 * frame.s))
    draw.rectangle([0, 0, img.width - 1, img.height - 1], outline=255, width=lw)
    draw.rectangle([lw + 2, lw + 2, img.width - lw - 3, img.height - lw - 3], outline=255, width=max(1, lw // 2))
    y = 2 * pad
    for line, b in zip(lines, boxes, strict=True):
        draw.text((img.width / 2, y - b[1] + (b[3] - b[1]) / 2), line, font=face, fill=255, anchor="mm")
        y += b[3] - b[1] + pad
    img = img.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    cov = np.asarray(img, dtype=np.float32) / 255.0
    bank = noise_bank()
    rows = (off[0] + np.arange(cov.shape[0])) % bank.shape[0]
    cols = (off[1] + np.arange(cov.shape[1])) % bank.shape[1]
    ink = np.clip(0.75 + 0.35 * bank[np.ix_(rows, cols)], 0.0, 1.0)  # uneven inking
    r = round(frame.row(cy) - cov.shape[0] / 2)
    c = round(frame.col(cx) - cov.shape[1] / 2)
    return Overlay(r, c, (opacity * cov * ink).astype(np.float32))
