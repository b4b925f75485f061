"""Printed text and furniture: depth numbers, the log header, and the curve-name and scale stacks.

Positions and font sizes are drawn in full-scale units and drawn at the render scale; text is Pillow
FreeType (``fonts.text_mask``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter

from datamodules.synth.fonts import font, quantise, text_mask
from datamodules.synth.grid import DepthScale, Grid
from datamodules.synth.raster import Frame, stamp
from datamodules.synth.sample import CurveInfo
from datamodules.synth.scene import Geometry, Layout, Stacks
from datamodules.synth.signals import NAMES, PRESETS
from datamodules.synth.styles import Look


def _fit(text: str, size: float, rotate: bool, along: float, across: float) -> float:
    """The largest size <= ``size`` (full scale, steps of 1 px, >= 6) whose box fits ``along`` x ``across``
    (columns x rows, full scale); 0 if none."""
    while size >= 6:
        m = text_mask(text, size, rotate)
        if m.shape[1] <= along and m.shape[0] <= across:
            return size
        size -= 1.0
    return 0.0


def _put(
    t: npt.NDArray[np.float32], frame: Frame, text: str, size: float, rotate: bool, xc: float, yc: float, a: float
) -> None:
    """Stamp ``text`` (full-scale size) centred at full-scale (xc, yc), at the render scale."""
    m = text_mask(text, quantise(size * frame.s), rotate, round(frame.blur * frame.s, 1))
    r = round(frame.row(yc) - m.shape[0] / 2)
    c = round(frame.col(xc) - m.shape[1] / 2)
    stamp(t, m, r, c, a)


def draw_depth_numbers(
    rng: np.random.Generator,
    t: npt.NDArray[np.float32],
    lay: Layout,
    geo: Geometry,
    grid: Grid,
    frame: Frame,
    blank: npt.NDArray[np.bool_],
) -> DepthScale:
    """Depth numbers at every major depth line (every 50 or 100 ft, or 25 or 50 m), increasing with x.

    Returns the depth scale they print (also where no number is drawn: the page's depth is known all the same).
    """
    metric = rng.random() < 0.25
    step = (1 if metric else 2) * grid.major_every  # minor lines every 2 ft (or 1 m)
    start = step * int(rng.uniform(100, 12000) / (3.28 if metric else 1.0) // step)
    size, a = rng.uniform(8, 20), rng.uniform(0.75, 1.0)
    scale = DepthScale("m" if metric else "ft", float(start), grid.first_major, (1 if metric else 2) / grid.spacing)
    if lay.depth_band is None or grid.major_x.size == 0:
        return scale
    top, bot = lay.depth_band
    spacing = float(np.min(np.diff(grid.major_x))) if grid.major_x.size > 1 else float(lay.full_w)
    widest = str(start + step * grid.major_x.size)
    rotate = lay.rotate_text
    fit = _fit(widest, size, rotate, 0.8 * spacing, bot - top - 2)
    if fit == 0:
        rotate = not rotate
        fit = _fit(widest, size, rotate, 0.8 * spacing, bot - top - 2)
    if fit == 0:
        return scale
    ok = ~blank[np.clip(np.rint(frame.col(grid.major_x)).astype(np.int64), 0, frame.w - 1)]
    for i, x in enumerate(grid.major_x):
        if ok[i]:
            y = 0.5 * (top + bot) + float(geo.dy_grid[min(lay.full_w - 1, max(0, round(x)))])
            _put(t, frame, str(start + step * i), fit, rotate, float(x), y, a)
    return scale


_TITLES = (
    "INDUCTION ELECTRICAL LOG",
    "DUAL INDUCTION - SFL",
    "COMPENSATED NEUTRON - FORMATION DENSITY",
    "BOREHOLE COMPENSATED SONIC LOG",
    "GAMMA RAY - NEUTRON",
    "DUAL LATEROLOG",
)
_COMPANIES = (
    "PETROLOG SERVICES",
    "ACME WIRELINE",
    "GREAT PLAINS LOGGING",
    "NORTHSTAR WELL SURVEYS",
    "DELTA LOGGING CO.",
)
_FIELDS = (
    "COMPANY", "WELL", "FIELD", "COUNTY", "STATE", "LOCATION", "ELEVATION", "LOG MEASURED FROM", "DATE",
    "RUN NO.", "DEPTH-DRILLER", "DEPTH-LOGGER", "BTM. LOG INTERVAL", "TOP LOG INTERVAL", "CASING-DRILLER",
    "BIT SIZE", "TYPE FLUID IN HOLE", "DENS. / VISC.", "RM @ MEAS. TEMP.", "RMF @ MEAS. TEMP.",
    "MAX. REC. TEMP.", "RECORDED BY", "WITNESSED BY",
)  # fmt: skip


_WORDS = {  # plausible values of the word-valued heading fields
    "FIELD": ("WILDCAT", "NORTH UNIT", "EAST RIDGE", "SALT CREEK", "MILL POND"),
    "COUNTY": ("BARTON", "ELLIS", "ROOKS", "KERN", "WARD", "GARVIN"),
    "STATE": ("KANSAS", "TEXAS", "OKLA.", "WYO.", "COLO."),
    "LOG MEASURED FROM": ("KB", "GL", "DF"),
    "RUN NO.": ("ONE", "TWO", "THREE"),
    "TYPE FLUID IN HOLE": ("CHEM. MUD", "FRESH MUD", "SALT MUD", "STARCH GEL"),
    "WITNESSED BY": ("J. SMITH", "R. MILLER", "D. HOLT", "K. WARD"),
}
_DEPTHS = ("DEPTH-DRILLER", "DEPTH-LOGGER", "BTM. LOG INTERVAL", "TOP LOG INTERVAL", "CASING-DRILLER", "ELEVATION")


def _field_value(rng: np.random.Generator, name: str) -> str:
    """A plausible entry for a heading field."""
    if name in ("COMPANY", "RECORDED BY"):
        return str(rng.choice(_COMPANIES))
    if name == "WELL":
        lease = rng.choice(["SMITH", "BAKER", "STATE", "JONES", "UNIT", "HILL"])
        return f"{lease} {rng.integers(1, 40)}-{rng.integers(1, 36)}"
    if name == "LOCATION":
        return f"SEC {rng.integers(1, 37)} T{rng.integers(1, 35)}S R{rng.integers(1, 43)}W"
    if name == "DATE":
        return f"{rng.integers(1, 13)}-{rng.integers(1, 29)}-{rng.integers(52, 99)}"
    if name == "BIT SIZE":
        return str(rng.choice(["6 1/8", "7 7/8", "8 1/2", "8 3/4", "9 7/8", "12 1/4"]))
    if name == "DENS. / VISC.":
        return f"{rng.uniform(8.6, 11):.1f} / {rng.integers(32, 60)}"
    if name.startswith(("RM @", "RMF @")):
        return f"{rng.uniform(0.05, 3):.2f} @ {rng.integers(60, 90)} F"
    if name == "MAX. REC. TEMP.":
        return f"{rng.integers(90, 260)} F"
    if name in _DEPTHS:
        return f"{rng.integers(100, 12000)}"
    return str(rng.choice(_WORDS[name]))


_REMARKS = (
    "ALL DEPTHS MEASURED FROM KB", "FLUID LEVEL AT SURFACE", "TOOL RAN CENTRALIZED", "SCALE CHANGE AT 4500 FT",
    "HOLE DEVIATED 2 DEG.", "MUD SAMPLE FROM PIT", "LOGS DEPTH MATCHED TO GR", "MATRIX DENSITY 2.71",
)  # fmt: skip


def draw_header(rng: np.random.Generator, t: npt.NDArray[np.float32], lay: Layout, frame: Frame) -> None:
    """The log heading at the left end: company and title, a ruled grid of fields, remarks; printed along the
    page, so turned 90 degrees here when the layout turns its text."""
    size, a, ncols = rng.uniform(9, 13), rng.uniform(0.8, 1.0), int(rng.integers(2, 4))
    company, title = str(rng.choice(_COMPANIES)), str(rng.choice(_TITLES))
    names = np.concatenate([rng.permutation(_FIELDS) for _ in range(3)])  # each field once before repeats
    values = [_field_value(rng, str(n)) for n in names]
    remarks = [str(r) for r in rng.choice(_REMARKS, size=4, replace=False)]
    if lay.header_w <= 0:
        return
    # Draw the heading as the page shows it (page width = our height), at full scale, then turn and shrink.
    page_w, page_h = lay.full_h, round(lay.header_w)
    if not lay.rotate_text:
        page_w, page_h = page_h, page_w
    img = Image.new("L", (page_w, page_h), 0)
    draw = ImageDraw.Draw(img)
    face, big = font(quantise(size)), font(quantise(size * 1.7))
    step = size * 1.8
    draw.text((10, 8), company, font=big, fill=255)
    draw.text((10, 8 + size * 2.2), title, font=big, fill=255)
    y = 8 + size * 4.8
    draw.line([(0, y), (page_w, y)], fill=255, width=2)
    col_w = page_w / ncols
    stop = page_h - (len(remarks) + 2) * step
    i = 0
    while y + step < stop and i + ncols <= len(names):
        for j in range(ncols):
            draw.text((6 + j * col_w, y + 0.3 * size), f"{names[i]}  {values[i]}", font=face, fill=255)
            i += 1
        y += step
        draw.line([(0, y), (page_w, y)], fill=150, width=1)
    for j in range(1, ncols):
        draw.line([(j * col_w, 8 + size * 4.8), (j * col_w, y)], fill=150, width=1)
    draw.line([(0, y + 2), (page_w, y + 2)], fill=255, width=2)
    draw.text((6, y + 0.5 * size), "REMARKS:", font=face, fill=255)
    for r in remarks:
        y += step
        if y + step < page_h:
            draw.text((6, y + 0.5 * size), r, font=face, fill=255)
    mask = np.asarray(img, dtype=np.float32) / 255.0
    if lay.rotate_text:
        mask = np.rot90(mask)
    h_out, w_out = frame.h, max(1, round(lay.header_w * frame.sx))
    if (h_out, w_out) != mask.shape:
        mask = np.asarray(Image.fromarray(mask).resize((w_out, h_out), Image.Resampling.BOX), dtype=np.float32)
    if frame.blur * frame.s > 0.2:
        img = Image.fromarray(np.rint(255 * mask).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(frame.blur * frame.s)
        )
        mask = np.asarray(img, dtype=np.float32) / 255.0
    stamp(t, mask, 0, 0, a)
    rule = max(1, round(2 * frame.sx))
    t[:, max(0, w_out - rule) : w_out] *= 0.15  # the heading's closing rule


def _fmt(v: float) -> str:
    if v != 0 and abs(v) < 1:
        return f"{v:.2f}".rstrip("0")
    return f"{v:g}"


def draw_stacks(
    rng: np.random.Generator,
    t: npt.NDArray[np.float32],
    lay: Layout,
    stacks: Stacks,
    infos: list[CurveInfo],
    tracks: list[int],
    looks: list[Look],
    frame: Frame,
) -> None:
    """Curve-name and scale stacks: per curve a line sample in its style across its track, its mnemonic and
    units in the middle, the left-scale value at the track's bottom and the right-scale value at its top."""
    size, a = rng.uniform(8, 12), rng.uniform(0.8, 1.0)
    names = [str(rng.choice(NAMES[info.kind])) for info in infos]
    for x0, x1 in stacks.regions:
        slot = dict.fromkeys(range(len(lay.tracks)), 0)
        for info, ti, look, name in zip(infos, tracks, looks, names, strict=True):
            track = lay.tracks[ti]
            xc = x0 + (slot[ti] + 0.5) * stacks.entry_w
            slot[ti] += 1
            xl = xc - 0.25 * stacks.entry_w  # the line sample, text to its right
            _line_sample(t, frame, xl, track.top + 3, track.bottom - 3, look)
            xt = xc + 0.12 * stacks.entry_w
            label = f"{name} {PRESETS[info.kind].units}"
            fit = _fit(label, size, True, stacks.entry_w * 0.5, 0.5 * (track.bottom - track.top))
            if fit:
                _put(t, frame, label, fit, True, xt, 0.5 * (track.top + track.bottom), a)
            for v, edge in ((info.left, track.bottom - 4), (info.right, track.top + 4)):
                txt = _fmt(v)
                m = text_mask(txt, max(6.0, fit or size), True)
                yc = edge - m.shape[0] / 2 if edge > track.top + 4 else edge + m.shape[0] / 2
                _put(t, frame, txt, max(6.0, fit or size), True, xt, yc, a)
        c0, c1 = round(frame.col(x0)), round(frame.col(x1))
        for c in (c0, c1):  # the stack's frame lines
            if 0 <= c < frame.w:
                for track in lay.tracks:
                    t[max(0, round(frame.row(track.top))) : round(frame.row(track.bottom)) + 1, c] *= 0.15


def _line_sample(t: npt.NDArray[np.float32], frame: Frame, x: float, top: float, bottom: float, look: Look) -> None:
    """A straight line across the track (rows top..bottom) in the curve's line coding."""
    r0, r1 = round(frame.row(top)), round(frame.row(bottom))
    if r1 <= r0:
        return
    arc = np.arange(r1 - r0, dtype=np.float64)
    pen = look.pen(frame.s)
    ink = (pen.down(arc) if pen is not None else np.ones(arc.size, bool)).astype(np.float32) * look.dark
    hw = look.half_width(frame.s)
    c = frame.col(x)
    for cc in range(int(np.floor(c - hw)), int(np.ceil(c + hw)) + 1):
        cov = float(np.clip(0.5 - (abs(cc - c) - hw) / 1.0, 0.0, 1.0))
        if cov > 0 and 0 <= cc < frame.w:
            t[r0:r1, cc] *= 1.0 - cov * ink
