"""Curve signals: which curves a log carries, their physics on the shared formation, the tool response,
logging interval, pen-up gaps, splices and off-scale handling (clip, wrap, backup trace). docs/generator.md
describes each, from 'Curve types and scales' to 'Off-scale: clip, wrap, backup'.

Everything is full scale: arrays are (W,) over full-scale columns, rows are full-scale rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy.ndimage import gaussian_filter1d

from datamodules.synth.lithology import Formation
from datamodules.synth.raster import sample_pieces
from datamodules.synth.sample import CurveInfo
from datamodules.synth.scene import Geometry, Layout

MAX_CURVES = 5


@dataclass(frozen=True)
class Preset:
    """How one curve type behaves (docs/generator.md, 'Curve signals'). Ranges are (lo, hi) of uniform draws.

    ``tool`` is the Gaussian vertical response (px); ``noise`` the filtered measurement noise in track
    widths (counting statistics on GR and neutron); ``spikes``, ``sines`` and ``trend`` scale the spec's
    spike rate (0-8 per 10k px), slow sinusoids (A <= 0.05) and drift (+-0.2 track widths).
    """

    units: str
    tool: tuple[float, float]
    noise: tuple[float, float]
    spikes: float
    sines: float
    trend: float


PRESETS = {
    "GR": Preset("GAPI", (2, 6), (0.006, 0.025), 1.0, 0.5, 0.3),
    "SP": Preset("MV", (6, 16), (0.0, 0.003), 0.0, 1.0, 1.0),
    "CALI": Preset("IN", (1, 3), (0.0, 0.0), 0.0, 0.0, 0.0),
    "RES_DEEP": Preset("OHMM", (4, 10), (0.002, 0.008), 0.3, 0.5, 0.3),
    "RES_MED": Preset("OHMM", (3, 7), (0.002, 0.008), 0.3, 0.5, 0.3),
    "RES_SHALLOW": Preset("OHMM", (1.5, 4), (0.003, 0.01), 0.5, 0.5, 0.3),
    "NPHI": Preset("V/V", (2, 5), (0.004, 0.015), 0.5, 0.5, 0.3),
    "RHOB": Preset("G/C3", (1.5, 4), (0.003, 0.01), 1.0, 0.5, 0.3),
    "DT": Preset("US/F", (2, 5), (0.002, 0.008), 1.0, 0.5, 0.3),
}
NAMES = {  # mnemonic printed in the scale stack
    "GR": ("GR",),
    "SP": ("SP",),
    "CALI": ("CALI", "CAL"),
    "RES_DEEP": ("ILD", "LLD", "RILD"),
    "RES_MED": ("ILM", "RILM"),
    "RES_SHALLOW": ("LLS", "SFLU", "MSFL"),
    "NPHI": ("NPHI", "CNL"),
    "RHOB": ("RHOB", "ZDEN"),
    "DT": ("DT", "AC"),
}
# Per track role: the primary curve, then optional companions (docs/generator.md, 'Curve types and scales').
_PRIMARY = {"T1": (("GR", 0.85), ("SP", 0.15)), "RES": (("RES_DEEP", 1.0),), "POR": (("NPHI", 0.6), ("RHOB", 0.4))}
_PRIMARY["SON"] = (("DT", 1.0),)
_COMPANIONS = {"T1": ("GR", "SP", "CALI"), "RES": ("RES_SHALLOW", "RES_MED"), "POR": ("NPHI", "RHOB"), "SON": ()}


@dataclass(frozen=True)
class Trace:
    """One plotted trace, full scale. Shapes: (W,) each.

    y: centreline row (track mapping + geometric offset), NaN where absent; seg: non-decreasing piece id
    (a change is a pen-up, wrap jump or splice); lap: wrap lap; clipped: True where the value is off the
    track and the pen runs along the border; pos: plotted track position (NaN where absent).
    """

    info: CurveInfo
    track: int
    y: npt.NDArray[np.float64]
    seg: npt.NDArray[np.int64]
    lap: npt.NDArray[np.int8]
    clipped: npt.NDArray[np.bool_]
    pos: npt.NDArray[np.float64]


def choose_kinds(rng: np.random.Generator, lay: Layout) -> list[tuple[str, int]]:
    """2-5 (kind, track index) primaries: each track's primary first, then companions, one curve per kind.

    Every layout has a track-1 (three kinds), resistivity (three) or porosity (two) track, so there are
    always at least two.
    """
    budget = max(len(lay.tracks), int(rng.choice([2, 3, 4, 5], p=[0.25, 0.3, 0.25, 0.2])))  # no empty track
    picks: list[tuple[str, int]] = []
    for t, track in enumerate(lay.tracks):
        opts = _PRIMARY[track.role]
        kind = opts[int(rng.choice(len(opts), p=[p for _, p in opts]))][0]
        if len(picks) < budget and all(kind != k for k, _ in picks):
            picks.append((kind, t))
    pool = [(k, t) for t, tr in enumerate(lay.tracks) for k in _COMPANIONS[tr.role]]
    for i in rng.permutation(len(pool)):
        kind, t = pool[int(i)]
        if len(picks) < budget and all(kind != k for k, _ in picks):
            picks.append((kind, t))
    return picks


@dataclass(frozen=True)
class _Log:
    """Constants of one well shared by its curves (tool calibrations, fluids)."""

    gr_clean: float
    gr_shale: float
    ssp: float
    rw: float
    rsh: float
    sep_water: float
    sep_hc: float
    nphi_shale: float
    rho_shale: float
    dt_shale: float
    bit: float
    res_left: float  # left edge of the resistivity scale (set from the well's resistivity)


def _draw_log(rng: np.random.Generator) -> _Log:
    return _Log(
        gr_clean=rng.uniform(15, 45),
        gr_shale=rng.uniform(80, 140),
        ssp=rng.uniform(20, 80) * (1.0 if rng.random() < 0.15 else -1.0),  # reversed SP when Rmf < Rw
        rw=float(np.exp(rng.uniform(np.log(0.03), np.log(0.3)))),
        rsh=float(np.exp(rng.uniform(np.log(0.8), np.log(8.0)))),
        sep_water=rng.uniform(0.1, 0.5) * (1.0 if rng.random() < 0.7 else -1.0),
        sep_hc=-rng.uniform(0.1, 0.5),
        nphi_shale=rng.uniform(0.25, 0.4),
        rho_shale=rng.uniform(2.4, 2.6),
        dt_shale=rng.uniform(90, 130),
        bit=float(rng.choice([6.125, 7.875, 8.5, 8.75, 9.875, 12.25])),
        res_left=0.2,
    )


def _scale(rng: np.random.Generator, kind: str, lay: Layout, track: int, log: _Log) -> tuple[str, float, float]:
    """(lin | log, left, right) of a curve type's presentation scale."""

    def pick(options: list[tuple[float, float]], p: list[float]) -> tuple[float, float]:
        return options[int(rng.choice(len(options), p=p))]

    if kind.startswith("RES"):
        return "log", log.res_left, log.res_left * 10.0 ** lay.tracks[track].decades  # one log grid per track
    if kind == "GR":  # 0-100 only where shales read below 100 API
        left, right = pick([(0.0, 150.0), (0.0, 200.0), (0.0, 100.0)], [0.7, 0.15, 0.15])
        return "lin", left, (150.0 if right == 100.0 and log.gr_shale > 95 else right)
    if kind == "SP":
        span = float(rng.choice([100.0, 200.0], p=[0.75, 0.25]))
        base_at = rng.uniform(0.55, 0.85) if log.ssp < 0 else rng.uniform(0.15, 0.45)  # shale baseline position
        left = 10.0 * round(-base_at * span / 10.0)
        return "lin", left, left + span
    if kind == "CALI":
        lefts = [v for v in (4.0, 5.0, 6.0, 8.0) if v <= log.bit - 1.0]
        left = float(lefts[int(rng.integers(len(lefts)))])
        return "lin", left, left + 10.0
    if kind == "NPHI":
        return "lin", *pick([(0.45, -0.15), (0.6, 0.0)], [0.85, 0.15])
    if kind == "RHOB":
        return "lin", *pick([(1.95, 2.95), (1.9, 2.9)], [0.85, 0.15])
    return "lin", *pick([(140.0, 40.0), (150.0, 50.0)], [0.7, 0.3])  # DT


def _res_left(rng: np.random.Generator, r: npt.NDArray[np.float64], decades: int) -> float:
    """The usual left edge (0.2, 1, 2 or 20 ohm-m) that puts the median resistivity nearest a position drawn in
    [0.25, 0.55] of the track."""
    target = rng.uniform(0.25, 0.55)
    lefts = np.array([0.2, 1.0, 2.0, 20.0])
    pos = (np.log10(np.median(r)) - np.log10(lefts)) / decades
    return float(lefts[int(np.argmin(np.abs(pos - target)))])


def _value(kind: str, f: Formation, log: _Log) -> npt.NDArray[np.float64]:
    """Physical value per column before the tool response: simple petrophysics
    (docs/generator.md, 'Curve types and scales')."""
    clean = 1.0 - f.vsh
    if kind == "GR":
        gr = log.gr_clean + f.vsh * (log.gr_shale - log.gr_clean) + f.hot
        return gr * (1.0 - 0.4 * f.tight)
    if kind == "SP":  # deflection only in permeable beds; the drifting shale baseline is added later
        return log.ssp * clean * (1.0 - f.tight)
    if kind == "CALI":  # bit size, caves in soft shale, a thin mud cake on permeable sands
        return log.bit + f.washout - 0.25 * clean * (1.0 - f.tight) * (f.phi > 0.08)
    if kind.startswith("RES"):
        sand = np.log10(log.rw / (f.phi**2 * f.sw**2))  # Archie, a = 1, m = n = 2
        log_r: npt.NDArray[np.float64]  # declared: numpy types np.log10 of a Python float as Any
        log_r = np.where(f.tight > 0, np.log10(3000.0 * (0.02 / f.phi)), sand) * clean + f.vsh * np.log10(log.rsh)
        log_r = np.clip(log_r, -1.5, 6.0)
        if kind != "RES_DEEP":  # invasion: shallow reads off deep in permeable beds (+-0.1-0.5 decade)
            sep = np.where(f.sw < 0.99, log.sep_hc, log.sep_water) * clean * (1.0 - f.tight)
            log_r = log_r + (sep if kind == "RES_SHALLOW" else 0.5 * sep)
        return 10.0**log_r
    if kind == "NPHI":  # limestone units: bound water reads high in shale, gas reads low
        return f.phi + f.vsh * log.nphi_shale - 0.12 * f.gas - 0.02 * clean
    if kind == "RHOB":
        rho_fluid = np.where(f.gas > 0, f.sw * 1.05 + (1 - f.sw) * 0.25, 1.05 - 0.2 * (1 - f.sw))
        rho = clean * (2.65 * (1 - f.phi) + rho_fluid * f.phi) + f.vsh * (log.rho_shale + 0.1 * f.depth)
        return rho - np.minimum(0.3, 0.12 * f.washout)  # bad hole reads light
    dt_shale = log.dt_shale - 25.0 * f.depth  # DT: Wyllie, shale compaction trend
    return clean * (55.5 * (1 - f.phi) + 189.0 * f.phi + 10.0 * f.gas) + f.vsh * dt_shale


def _response(rng: np.random.Generator, pos: npt.NDArray[np.float64], preset: Preset) -> npt.NDArray[np.float64]:
    """Tool response and measurement: smoothing, drift, slow sinusoids, filtered noise, spikes."""
    w = pos.size
    x = np.arange(w, dtype=np.float64)
    u = x / max(1, w - 1)
    s: npt.NDArray[np.float64] = gaussian_filter1d(pos, rng.uniform(*preset.tool))  # scipy is untyped: Any
    drift = rng.uniform(-0.2, 0.2) * (u if rng.random() < 0.5 else u * u)
    s = s + preset.trend * drift
    for _ in range(3):
        a, p, ph = rng.uniform(0, 0.05), rng.uniform(200, 4000), rng.uniform(0, 2 * np.pi)
        s = s + preset.sines * a * np.sin(2 * np.pi * x / p + ph)
    sigma = rng.uniform(*preset.noise)
    n: npt.NDArray[np.float64] = gaussian_filter1d(rng.standard_normal(w), rng.uniform(0.5, 2))
    s = s + sigma * n / max(1e-9, float(n.std()))
    n_spikes = int(rng.poisson(rng.uniform(0, 8) * preset.spikes * w / 10000))
    for c, width, amp in zip(
        rng.integers(0, w, n_spikes), rng.uniform(1, 6, n_spikes), rng.normal(0, 0.3, n_spikes), strict=True
    ):
        half = max(1, round(width / 2))
        s[max(0, c - half) : c + half] += amp
    return s


def _logged(rng: np.random.Generator, w: int) -> tuple[npt.NDArray[np.bool_], int, float, float]:
    """Where one curve was logged and its splice (docs/generator.md, 'Logging interval, gaps and splices'):
    (on mask, splice column or -1, depth shift, value shift)."""
    on = np.ones(w, bool)
    if rng.random() < 0.3:  # not spanning the full width
        a, b = rng.uniform(0, 0.3) * w, rng.uniform(0.7, 1.0) * w
        which = rng.integers(0, 3)  # start late, end early, or both
        if which != 1:
            on[: int(a)] = False
        if which != 0:
            on[int(b) :] = False
    starts, lengths, n_gaps = rng.integers(0, w, 3), rng.uniform(10, 200, 3), int(rng.integers(0, 4))
    for g0, glen in zip(starts[:n_gaps], lengths[:n_gaps], strict=True):  # pen-up gaps of 10-200 px
        on[g0 : g0 + int(glen)] = False
    splice, shift, dv = -1, 0.0, 0.0
    if rng.random() < 0.05:  # stops and restarts with a small depth and value offset
        splice = int(rng.uniform(0.2, 0.8) * w)
        shift, dv = rng.uniform(2, 15) * rng.choice([-1.0, 1.0]), rng.normal(0, 0.03)
        on[splice : splice + int(rng.integers(1, 7))] = False
    return on, splice, shift, dv


def _pieces(on: npt.NDArray[np.bool_], cuts: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.int64]:
    """Non-decreasing piece id: a new piece after every gap and at every cut (True = a break before x)."""
    brk = np.zeros(on.size, bool)
    brk[1:] = on[1:] != on[:-1]
    if cuts is not None:
        brk |= cuts
    return np.cumsum(brk)


def make_traces(
    rng: np.random.Generator,
    lay: Layout,
    geo: Geometry,
    f: Formation,
    kinds: list[tuple[str, int]],
    blank: npt.NDArray[np.bool_],
) -> list[Trace]:
    """Primaries in ``kinds`` order, then their backup traces (style "solid" until styles are chosen).

    Args:
        blank: (W,) bool, image columns where no curve is drawn (header, scale stacks).
    """
    w = lay.full_w
    log = _draw_log(rng)
    x = np.arange(w, dtype=np.float64)
    x_src = x - geo.stretch - geo.dx_curve
    traces: list[Trace] = []
    overflow: list[tuple[int, npt.NDArray[np.float64]]] = []  # (primary index, raw position) of backup candidates
    values = [_value(kind, f, log) for kind, _ in kinds]
    res = [(v, t) for (kind, t), v in zip(kinds, values, strict=True) if kind.startswith("RES")]
    if res:  # one resistivity grid per log, chosen to fit the well
        log = replace(log, res_left=_res_left(rng, res[0][0], lay.tracks[res[0][1]].decades))
    for (kind, t), value in zip(kinds, values, strict=True):
        scale, left, right = _scale(rng, kind, lay, t, log)
        info = CurveInfo(kind, scale, left, right, "clip", -1, "solid")
        raw = _response(rng, info.position(value), PRESETS[kind])
        on, splice, shift, dv = _logged(rng, w)
        cut = np.zeros(w, bool)
        if splice >= 0:  # the later run, a little off in depth and value
            raw[splice:] = np.interp(np.clip(x[splice:] + shift, 0, w - 1), x, raw) + dv
            cut[splice] = True
        pos, seg = sample_pieces(np.where(on, raw, np.nan), _pieces(on, cut), x_src)
        pos[blank] = np.nan
        seg = seg + np.cumsum(np.diff(blank, prepend=blank[0]) != 0)  # a blank stretch is a pen-up
        mode = str(rng.choice(["clip", "wrap", "backup"], p=[0.6, 0.25, 0.15]))
        track = lay.tracks[t]
        lap = np.zeros(w, np.int8)
        if mode == "wrap":
            fl = np.clip(np.floor(np.nan_to_num(pos, nan=0.0)), -100, 100)
            lap = fl.astype(np.int8)
            seg = seg + np.cumsum(np.diff(fl, prepend=fl[0]) != 0)  # pen-up at lap changes
            plotted = pos - fl
        else:
            plotted = np.clip(pos, 0.0, 1.0)
            if mode == "backup":
                overflow.append((len(traces), pos))
        clipped = np.isfinite(pos) & ((pos < 0) | (pos > 1)) if mode != "wrap" else np.zeros(w, bool)
        traces.append(
            Trace(replace(info, offscale=mode), t, track.row(plotted) + geo.dy_curve, seg, lap, clipped, plotted)
        )
    for k, pos in overflow:
        primary = traces[k]
        side = 1 if np.sum(pos > 1) >= np.sum(pos < 0) else -1
        over = np.isfinite(pos) & ((pos > 1) if side > 0 else (pos < 0))
        if len(traces) >= MAX_CURVES or over.sum() < 20:
            traces[k] = replace(primary, info=replace(primary.info, offscale="clip"))
            continue
        info = primary.info
        lo, hi = float(info.value(0.0, side)), float(info.value(1.0, side))  # the scale shifted one track width
        b_info = CurveInfo(info.kind, info.scale, lo, hi, "clip", k, "long")
        b_pos = np.where(over, pos - side, np.nan)
        seg = _pieces(over, np.diff(primary.seg, prepend=primary.seg[0]) != 0)
        b_plot: npt.NDArray[np.float64] = np.clip(b_pos, 0.0, 1.0)
        b_y = lay.tracks[primary.track].row(b_plot) + geo.dy_curve
        b_clipped = over & ((b_pos < 0) | (b_pos > 1))
        traces.append(Trace(b_info, primary.track, b_y, seg, np.zeros(w, np.int8), b_clipped, b_plot))
    return traces
