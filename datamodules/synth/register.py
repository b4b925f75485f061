"""The exact registration of a rendered raster: the generator knows every column's depth and every curve's scale.

A curve at output column c shows the formation at undistorted depth coordinate ``x - stretch(x) - dx_curve``
(x the column's full-scale centre, ``scene.make_geometry``), which the page's depth scale turns into feet or
metres; its track position p is plotted at row ``bottom - p * (bottom - top) + dy_curve(x)`` (output scale). The
registration samples both maps every ``SAMPLE_PX`` full-scale px (piecewise linear in between: the distortions
vary over thousands of px, so the error is a few hundredths of a px), and gives each curve a pick where it is
farthest from the other curves of its class, so that a digitiser can tell them apart.
"""

from __future__ import annotations

import numpy as np

from datamodules.registration import CurveScale, Pick, Registration, TrackScale
from datamodules.synth.generate import Drawn
from datamodules.synth.signals import NAMES, PRESETS

PICK_CLEAR_PX = 4.0  # a pick keeps this far from the track's borders, where a clipped pen would run
PICK_APART = 0.03  # and this far (in track heights) from the other curves of its class: where resistivities run
# braided a few px apart for hundreds of columns, a user clicks each strand where the eye tells them apart
SAMPLE_PX = 32.0  # full-scale px between the registration's depth and row-offset points
DESCRIPTIONS = {
    "GR": "gamma ray",
    "SP": "spontaneous potential",
    "CALI": "caliper",
    "RES_DEEP": "deep resistivity",
    "RES_MED": "medium resistivity",
    "RES_SHALLOW": "shallow resistivity",
    "NPHI": "neutron porosity (limestone)",
    "RHOB": "bulk density",
    "DT": "sonic transit time",
}


def mnemonic(kind: str) -> str:
    """The LAS mnemonic the registration gives a curve type (the first name its scale stack may print)."""
    return NAMES[kind][0] if kind in NAMES else kind


def registration_of(drawn: Drawn, well: dict[str, str] | None = None) -> Registration:
    """The registration that maps ``drawn``'s curve pixels to the depths and values they were drawn from."""
    scene, frame = drawn.scene, drawn.frame
    geo, lay = scene.geometry, scene.layout
    every = max(1, int(SAMPLE_PX * frame.sx))
    cols = np.unique(np.concatenate([np.arange(0, frame.w, every), [frame.w - 1]])).astype(np.float64)
    x = (cols + 0.5) / frame.sx - 0.5  # full-scale column of each output column's centre
    full = np.arange(frame.full_w, dtype=np.float64)
    src = x - np.interp(x, full, geo.stretch) - geo.dx_curve  # the formation's depth coordinate
    depth = drawn.depth.at(src)
    offset = np.interp(x, full, geo.dy_curve) * frame.sy
    if frame.w < 2 or depth[0] == depth[-1]:  # a one-column raster: two points a column apart still register it
        cols, depth, offset = np.array([0.0, 1.0]), np.array([depth[0], depth[0] + drawn.depth.per_px]), offset[:1]
        offset = np.repeat(offset, 2)
    tracks = []
    for t, track in enumerate(lay.tracks):
        curves = [_curve(drawn, k, t) for k, tr in enumerate(scene.traces) if tr.track == t and tr.info.backup_of < 0]
        tracks.append(TrackScale(frame.row(track.top), frame.row(track.bottom), tuple(curves)))
    return Registration(
        width=frame.w,
        height=frame.h,
        depth_unit=drawn.depth.unit,
        depth_points=np.stack([cols, depth], axis=1),
        tracks=tuple(tracks),
        row_offset=np.stack([cols, offset], axis=1),
        well=dict(well or {}),
    )


def _curve(drawn: Drawn, k: int, track: int) -> CurveScale:
    info = drawn.sample.curves[k]
    cls = int(drawn.sample.curve_classes[k])
    backups = [j for j, c in enumerate(drawn.sample.curves) if c.backup_of == k]
    backup_class = int(drawn.sample.curve_classes[backups[0]]) if backups else cls
    return CurveScale(
        cls=cls,
        mnemonic=mnemonic(info.kind),
        unit=PRESETS[info.kind].units if info.kind in PRESETS else "",
        left=float(info.left),
        right=float(info.right),
        scale="log" if info.scale == "log" else "linear",
        offscale=info.offscale,
        backup_class=backup_class,
        picks=_picks(drawn, k, track),
        description=DESCRIPTIONS.get(info.kind, ""),
    )


def _picks(drawn: Drawn, k: int, track: int) -> tuple[Pick, ...]:
    """Points on curve k, each with its true row and lap: the middle of every stretch where it is scored, off the
    track's borders and clear of the other curves of its class in the track (so that a tracer that swapped two
    curves where they met is put right); one, in the longest stretch, for a curve alone in its class that neither
    wraps nor has a backup trace; and the middle of every such stretch of its backup traces, on the lap their values
    lie on in the curve's own scale. None for a curve never drawn."""
    s = drawn.sample
    rows = s.curve_rows
    top, bottom = drawn.borders[track]  # (w,) rows of the track's borders as drawn
    height = float(s.curve_tracks[k, 1] - s.curve_tracks[k, 0])
    same = [
        j
        for j, tr in enumerate(drawn.scene.traces)
        if j != k and tr.track == track and s.curve_classes[j] == s.curve_classes[k]
    ]
    with np.errstate(invalid="ignore"):
        free = np.isfinite(rows[k]) & (rows[k] - top >= PICK_CLEAR_PX) & (bottom - rows[k] >= PICK_CLEAR_PX)
        for j in same:
            free &= ~_near(rows[k], rows[j], max(PICK_CLEAR_PX, PICK_APART * height))
    for c in np.flatnonzero(np.diff(s.curve_laps[k]) != 0):  # every lap of a wrapped curve gets picks of its own
        free[max(0, c - 2) : c + 4] = False
    picks = _stretch_middles(free, s.curve_scored[k])  # where the true row is inked (not a dash space)
    if not picks:
        fin = np.flatnonzero(np.isfinite(rows[k]))
        if fin.size == 0:
            return ()
        picks = [(1, int(fin[fin.size // 2]))]
    if not same and s.curves[k].offscale == "clip":
        picks = [max(picks)]
    out = [(c, float(rows[k, c]), int(s.curve_laps[k, c])) for _, c in picks]
    for j, info in enumerate(s.curves):  # a backup trace's stretches get picks of their own, on its lap
        if info.backup_of == k:
            off = round(float(s.curves[k].position(info.value(np.array([0.5]), np.array([0])))[0]) - 0.5)
            with np.errstate(invalid="ignore"):
                clear = np.isfinite(rows[j]) & (rows[j] - top >= PICK_CLEAR_PX) & (bottom - rows[j] >= PICK_CLEAR_PX)
                for i in same:
                    if i != j:
                        clear &= ~_near(rows[j], rows[i], max(PICK_CLEAR_PX, PICK_APART * height))
            middles = _stretch_middles(clear, s.curve_scored[j])
            out += [(c, float(rows[j, c]), int(s.curve_laps[j, c]) + off) for _, c in middles]
    return tuple(Pick(float(c), row, lap) for c, row, lap in sorted(out))


def _near(a: np.ndarray, b: np.ndarray, apart: float) -> np.ndarray:
    """(w,) where rows ``a`` and ``b`` are nearer than ``apart``, or cross between this column and a neighbour (a
    steep curve can pass another from one column to the next without ever being near it in one column)."""
    with np.errstate(invalid="ignore"):
        d = np.asarray(a - b, np.float64)
        near: np.ndarray = np.abs(d) < apart
        side = np.sign(d)
        crossed = np.isfinite(d[:-1]) & np.isfinite(d[1:]) & (side[:-1] != side[1:])
    near[:-1] |= crossed
    near[1:] |= crossed
    return near


def _stretch_middles(free: np.ndarray, scored: np.ndarray) -> list[tuple[int, int]]:
    """(length, column) of every stretch of ``free``: its scored column nearest the stretch's middle."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], free.astype(np.int8), [0]])))
    at = np.flatnonzero(scored)
    out = []
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()):
        inside = at[(at >= a) & (at < b)]
        if inside.size:
            out.append((b - a, int(inside[np.argmin(np.abs(inside - (a + b - 1) / 2))])))
    return out
