"""Curve tracing: per-column runs of a class linked across columns into curves (rules in ``docs/tracing.md``).

Three steps, each a function:

1. ``fragments``: in one track band and one class, a column-by-column tracker links each column's runs
   (``runs_of``) to the curves it follows by the position each predicts from its recent slope. Where two curves
   of the class meet in one run (a crossing, an overlay), both take it, at half confidence; when they part again
   a short meeting is resolved by each curve's slope before it, a long one by their order before it. Holes no
   longer than ``bridge`` columns (the spaces of a dashed line) stay inside a fragment.
2. ``link``: fragments are joined end to start across longer holes (pen-up gaps, blank stretches under a scale
   stack) where their extrapolations meet, and across a track edge one lap up or down where the off-scale rule
   allows it: a wrapped curve's re-entry at the opposite edge, and a backup trace taking over from its clipped
   primary (possibly of another class). Each joined chain is one curve with a relative lap per column.
3. ``trace_registered``: for a registration, every registered curve is the cheapest path through its picks over
   the runs of its classes on the laps its rule allows (``_follow``: continuity of position and slope, holes only
   where ink ends, a new segment at a cost), the curves of a track followed in turn, each seeing the ink the
   others took; samples on a clipped border are dropped first (they carry no value), and short holes are bridged.
   Steps 1 and 2 serve ``trace_mask`` (one class without a registration).

Everything is numpy on the CPU; positions are heights above the track's bottom border in rows (``h``), unwrapped
as ``u = h + lap * H`` for a track ``H`` rows high, which is affine in the track position ``u / H``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from datamodules.registration import CurveScale, Registration

ROUNDS = 1  # each curve of a track is followed again this many times, the others' paths known
EDGE_PX = 1.5  # a sample this close to a clipping border (or beyond it) is off scale
MERGED_CONFIDENCE = 0.5  # a sample taken from a run shared with another curve counts half


@dataclass(frozen=True)
class Runs:
    """The vertical runs of one class, sorted by column, then row. Shapes: (M,) each.

    ``top`` and ``bottom`` are a run's first and last row (inclusive); ``centre`` its probability-weighted centre
    row (``models.extraction.run_centres``); ``conf`` the mean class probability over its pixels.
    """

    col: npt.NDArray[np.int64]
    top: npt.NDArray[np.float64]
    bottom: npt.NDArray[np.float64]
    centre: npt.NDArray[np.float64]
    conf: npt.NDArray[np.float64]

    def select(self, keep: npt.NDArray[np.bool_]) -> Runs:
        return Runs(self.col[keep], self.top[keep], self.bottom[keep], self.centre[keep], self.conf[keep])


def runs_of(mask: npt.NDArray[np.bool_], prob: npt.NDArray[np.floating] | None = None) -> Runs:
    """Every vertical run of ``mask`` (H, W) with its centre weighted by ``prob`` (H, W) (1 where None)."""
    cols, rows = np.nonzero(mask.T)  # ordered by column, then row
    if cols.size == 0:
        empty = np.zeros(0, np.float64)
        return Runs(np.zeros(0, np.int64), empty, empty, empty, empty)
    start = np.ones(cols.size, bool)
    start[1:] = (cols[1:] != cols[:-1]) | (rows[1:] != rows[:-1] + 1)
    first = np.flatnonzero(start)
    last = np.concatenate([first[1:], [cols.size]]) - 1
    w = np.ones(cols.size) if prob is None else np.asarray(prob, np.float64)[rows, cols]
    total = np.add.reduceat(w, first)
    moment = np.add.reduceat(w * rows, first)
    plain = (rows[first] + rows[last]) / 2.0
    centre = np.where(total > 0, moment / np.maximum(total, 1e-12), plain)
    conf = total / (last - first + 1)
    return Runs(
        cols[first].astype(np.int64), rows[first].astype(np.float64), rows[last].astype(np.float64), centre, conf
    )


@dataclass(frozen=True)
class Band:
    """One track band: its top and bottom row in every column. Shapes: (W,) each; ``height`` in rows."""

    top: npt.NDArray[np.float64]
    bottom: npt.NDArray[np.float64]

    @property
    def height(self) -> float:
        return float(np.median(self.bottom - self.top))

    @property
    def width(self) -> int:
        return int(self.top.size)

    def bridge(self) -> int:
        """The longest hole (columns) kept inside one curve as a dash space: about an eighth of the track height."""
        return max(3, round(0.12 * self.height))


@dataclass(frozen=True)
class Fragment:
    """A stretch of one curve as the tracker followed it: per sample its column, centre height, the height range of
    its run (``lo`` to ``hi``), confidence and whether it was shared. Shapes: (n,) each, columns increasing."""

    cls: int
    cols: npt.NDArray[np.int64]
    h: npt.NDArray[np.float64]
    lo: npt.NDArray[np.float64]
    hi: npt.NDArray[np.float64]
    conf: npt.NDArray[np.float64]
    merged: npt.NDArray[np.bool_]


@dataclass
class _Open:
    """A fragment being followed: its samples so far and its state in a meeting with another curve."""

    cols: list[int] = field(default_factory=list)
    h: list[float] = field(default_factory=list)
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)
    conf: list[float] = field(default_factory=list)
    merged: list[bool] = field(default_factory=list)
    met_at: int = -1  # column where the current meeting began, -1 outside one
    cross_len: int = 0  # how long a crossing at the angle the curves met at would keep them in one run
    anchor: tuple[int, float, float] = (0, 0.0, 0.0)  # (column, h, slope) at the last sample before the meeting

    def add(self, x: int, h: float, lo: float, hi: float, conf: float, shared: bool) -> None:
        self.cols.append(x)
        self.h.append(h)
        self.lo.append(lo)
        self.hi.append(hi)
        self.conf.append(conf)
        self.merged.append(shared)

    def slope(self, window: int) -> float:
        """Median step of h per column over the last ``window`` samples taken alone (robust to one spike)."""
        idx = [i for i in range(len(self.cols)) if not self.merged[i]][-window - 1 :]
        if len(idx) < 2:
            return 0.0
        c = np.array([self.cols[i] for i in idx], np.float64)
        h = np.array([self.h[i] for i in idx], np.float64)
        return float(np.median(np.diff(h) / np.diff(c)))

    def trend(self, span: int) -> float:
        """Least-squares slope of h over the last ``span`` samples taken alone: the direction a curve comes into a
        meeting with (a shallow slope is a step every few columns, which a median of steps reads as 0)."""
        idx = [i for i in range(len(self.cols)) if not self.merged[i]][-span:]
        if len(idx) < 2:
            return 0.0
        c = np.array([self.cols[i] for i in idx], np.float64)
        h = np.array([self.h[i] for i in idx], np.float64)
        c = c - c.mean()
        return float(np.dot(c, h - h.mean()) / max(float(np.dot(c, c)), 1e-12))

    def predict(self, x: int, window: int) -> tuple[float, float, float]:
        """(low, high, slope): the range of h the curve may be at in column x, from where it is to where its slope
        takes it (a curve may level off); in a meeting no longer than a crossing at the angle they met at would
        take, where its slope before it takes it; in a longer one (an overlay) where it is, the order before the
        meeting breaking the tie."""
        if self.met_at < 0:
            s = self.slope(window)
            ahead = self.h[-1] + s * (x - self.cols[-1])
            return min(self.h[-1], ahead), max(self.h[-1], ahead), s
        c0, h0, s0 = self.anchor
        if x - self.met_at <= self.cross_len:  # a crossing: each curve goes on as it came in
            return h0 + s0 * (x - c0), h0 + s0 * (x - c0), s0
        return self.h[-1] + 1e-3 * h0, self.h[-1] + 1e-3 * h0, 0.0

    def frozen(self, cls: int) -> Fragment:
        return Fragment(
            cls,
            np.array(self.cols, np.int64),
            np.array(self.h, np.float64),
            np.array(self.lo, np.float64),
            np.array(self.hi, np.float64),
            np.array(self.conf, np.float64),
            np.array(self.merged, bool),
        )


def _closed(runs: Runs, gap: float) -> Runs:
    """Runs of one column less than ``gap`` rows apart joined into one (the dash pieces of a steep dashed line in
    a column; two curves that close are meeting anyway). The centre is the pieces' weighted mean."""
    if runs.col.size == 0:
        return runs
    new = np.ones(runs.col.size, bool)
    new[1:] = (runs.col[1:] != runs.col[:-1]) | (runs.top[1:] - runs.bottom[:-1] - 1 > gap)
    first = np.flatnonzero(new)
    if first.size == runs.col.size:
        return runs
    weight = (runs.bottom - runs.top + 1) * np.maximum(runs.conf, 1e-6)
    total = np.add.reduceat(weight, first)
    return Runs(
        runs.col[first],
        np.minimum.reduceat(runs.top, first),
        np.maximum.reduceat(runs.bottom, first),
        np.add.reduceat(weight * runs.centre, first) / total,
        np.add.reduceat(weight * runs.conf, first) / np.add.reduceat(runs.bottom - runs.top + 1, first),
    )


def fragments(runs: Runs, band: Band, cls: int = 1) -> list[Fragment]:
    """Follow the runs of one class in one band column by column (step 1 of the module docstring).

    A run continues a curve when it touches the curve's run in the column before (a drawn line is connected),
    or lies within a gate of where the curve's slope takes it (across a dash space, or a gap in the ink); the
    gate widens with the hole and the slope.

    Args:
        runs: the class's runs, already restricted to the band.
    Returns:
        The fragments, in the order they started.
    """
    height = band.height
    bridge = band.bridge()
    window = max(3, round(0.05 * height))
    short = max(4, round(0.15 * height))
    span = max(10, round(0.25 * height))  # samples a curve's direction into a meeting is fitted over
    gate0 = max(2.0, 0.04 * height)
    runs = _closed(runs, max(3.0, 0.035 * height))
    h_of = band.bottom[runs.col] - runs.centre  # (M,)
    lo_of = band.bottom[runs.col] - runs.bottom  # the run's extent in h
    hi_of = band.bottom[runs.col] - runs.top
    bounds = np.searchsorted(runs.col, np.arange(band.width + 1))
    active: list[_Open] = []
    done: list[_Open] = []
    for x in range(band.width):
        a, b = int(bounds[x]), int(bounds[x + 1])
        keep: list[_Open] = []
        for f in active:
            (keep if x - f.cols[-1] <= bridge + 1 else done).append(f)
        active = keep
        if a == b:
            continue
        preds = [f.predict(x, window) for f in active]
        pairs = []
        for i, f in enumerate(active):
            hole = x - f.cols[-1] - 1
            p_lo, p_hi, s = preds[i]
            gate = gate0 + 0.3 * hole + 0.5 * abs(s)
            for j in range(a, b):
                d = max(lo_of[j] - p_hi, p_lo - hi_of[j], 0.0)
                if hole == 0 and f.met_at < 0:  # touching the run before: connected ink
                    d = min(d, max(lo_of[j] - f.hi[-1] - 1.0, f.lo[-1] - hi_of[j] - 1.0, 0.0))
                if d <= gate:
                    pairs.append((d + 0.25 * max(h_of[j] - p_hi, p_lo - h_of[j], 0.0), i, j))
        pairs.sort()
        taken_f: dict[int, int] = {}
        taken_r: dict[int, list[int]] = {}
        for _, i, j in pairs:
            if i not in taken_f and j not in taken_r:
                taken_f[i] = j
                taken_r[j] = [i]
        for i, f in enumerate(active):  # a curve whose prediction lies in a taken run shares it (they meet)
            if i in taken_f or x - f.cols[-1] > 1:
                continue
            p_lo, p_hi, s = preds[i]
            # in a meeting, its slope before it is trusted less the longer the meeting lasts
            tol = 1.0 if f.met_at < 0 else gate0 + 0.5 * abs(s) * (x - f.met_at)
            for j in taken_r:
                if lo_of[j] - tol <= p_hi and p_lo <= hi_of[j] + tol:
                    taken_f[i] = j
                    taken_r[j].append(i)
                    break
        absorbed: set[int] = set()
        for j, group in taken_r.items():  # curves meeting here: how long would a crossing keep them together?
            new = [active[i] for i in group if active[i].met_at < 0]
            if len(group) > 1 and new:
                slopes = [active[i].trend(span) if active[i].met_at < 0 else active[i].anchor[2] for i in group]
                spread = max(max(slopes) - min(slopes), 1e-3)
                length = max(short, int(2.0 * (hi_of[j] - lo_of[j] + 1.0) / spread) + 2)
                for f in new:
                    f.met_at, f.anchor, f.cross_len = x, (f.cols[-1], f.h[-1], f.trend(span)), length
        for i, j in taken_f.items():
            f = active[i]
            shared = len(taken_r[j]) > 1
            if not shared:
                f.met_at = -1
            conf = float(runs.conf[j]) * (MERGED_CONFIDENCE if shared else 1.0)
            h, lo, hi = float(h_of[j]), float(lo_of[j]), float(hi_of[j])
            if not shared:  # the other pieces of a steep dashed stroke in this column, next to this one, are its own
                more = True
                while more:
                    more = False
                    for k in range(a, b):
                        if k not in taken_r and k not in absorbed and lo_of[k] <= hi + gate0 and hi_of[k] >= lo - gate0:
                            absorbed.add(k)
                            lo, hi, more = min(lo, lo_of[k]), max(hi, hi_of[k]), True
                if hi - lo > hi_of[j] - lo_of[j]:
                    h = (lo + hi) / 2.0
            f.add(x, h, lo, hi, conf, shared)
        for j in range(a, b):
            if j not in taken_r and j not in absorbed:
                f = _Open()
                f.add(x, float(h_of[j]), float(lo_of[j]), float(hi_of[j]), float(runs.conf[j]), False)
                active.append(f)
    done.extend(active)
    done.sort(key=lambda f: f.cols[0])
    return [f.frozen(cls) for f in done]


@dataclass(frozen=True)
class Rules:
    """Which joins across a track edge are allowed: ``wrap`` classes re-enter one lap further in their own class;
    ``backup`` (primary class, backup class) pairs hand over to each other one lap apart."""

    wrap: frozenset[int] = frozenset()
    backup: frozenset[tuple[int, int]] = frozenset()

    def laps(self, a: int, b: int) -> tuple[int, ...]:
        """The lap changes allowed from a fragment of class ``a`` to one of class ``b``."""
        out = [0] if a == b else []
        if (a == b and a in self.wrap) or (a, b) in self.backup or (b, a) in self.backup:
            out += [1, -1]
        return tuple(out)


@dataclass(frozen=True)
class Curve:
    """A traced curve: per column its height above the bottom border (NaN where absent), its lap relative to its
    first fragment, its confidence, the class of the fragment there (0 where absent) and whether the sample was
    shared with another curve (a meeting). Shapes: (W,) each."""

    h: npt.NDArray[np.float64]
    lap: npt.NDArray[np.int64]
    conf: npt.NDArray[np.float64]
    cls: npt.NDArray[np.int64]
    merged: npt.NDArray[np.bool_]
    part: npt.NDArray[np.int64]  # which of the chain's fragments a sample comes from (0, 1, ...; -1 where absent)

    def unwrapped(self, height: float, offset: int = 0) -> npt.NDArray[np.float64]:
        """(W,) height above the bottom border with the laps unwrapped, rows; ``offset`` laps added."""
        return self.h + (self.lap + offset) * height

    @property
    def samples(self) -> int:
        return int(np.isfinite(self.h).sum())


def _end_slope(h: npt.NDArray[np.float64], c: npt.NDArray[np.int64], span: int) -> float:
    """Least-squares slope of h over the last ``span`` samples (the fragment's end)."""
    h, x = h[-span:], c[-span:].astype(np.float64)
    if h.size < 2:
        return 0.0
    x = x - x.mean()
    return float(np.dot(x, h - h.mean()) / max(float(np.dot(x, x)), 1e-12))


def link(frags: Iterable[Fragment], band: Band, rules: Rules = Rules()) -> list[Curve]:
    """Join fragments into curves (step 2 of the module docstring); the longest curve first.

    A fragment's end joins a later fragment's start when the ranges each reaches by its slope at the middle of
    the hole meet within a tolerance that grows with the hole and the slopes; across an edge (a lap up or down)
    only where the rules allow it, the first ends at that edge and the second starts at the opposite one.
    Joins are made cheapest first, each end and each start once.
    """
    frags = list(frags)
    height, width = band.height, band.width
    span = max(5, round(0.1 * height))  # samples an end's slope is fitted over
    reach = max(3, round(0.1 * height))  # how far a slope is trusted across a hole
    near = max(3.0, 0.15 * height)  # "at an edge", for a join across it
    base_tol = max(2.0, 0.06 * height)
    ends = [(int(f.cols[-1]), float(f.h[-1]), _end_slope(f.h, f.cols, span)) for f in frags]
    starts = [(int(f.cols[0]), float(f.h[0]), _end_slope(f.h[::-1], f.cols[::-1], span)) for f in frags]
    options = []
    for i, f in enumerate(frags):
        c1, h1, s1 = ends[i]
        for j, g in enumerate(frags):
            c0, h0, s0 = starts[j]
            gap = c0 - c1
            laps = rules.laps(f.cls, g.cls)
            # where it may have wrapped, only a hole no longer than crossing the border lines takes: else unknown lap
            steep = max(abs(s1), abs(starts[j][2]), 0.02)
            if gap < 1 or (len(laps) > 1 and gap > reach + 2.0 * base_tol / steep):
                continue
            for d in laps:  # across an edge: each reaches it by its slope over the hole
                if d == 1 and not (
                    max(f.hi[-1], h1 + s1 * gap) >= height - near and min(g.lo[0], h0 - s0 * gap) <= near
                ):
                    continue
                if d == -1 and not (
                    min(f.lo[-1], h1 + s1 * gap) <= near and max(g.hi[0], h0 - s0 * gap) >= height - near
                ):
                    continue
                half = min(gap / 2.0, reach)
                a_lo = min(f.lo[-1], h1 + s1 * half)  # where A may be at the middle of the hole
                a_hi = max(f.hi[-1], h1 + s1 * half)
                b_lo = min(g.lo[0], h0 - s0 * half) + d * height
                b_hi = max(g.hi[0], h0 - s0 * half) + d * height
                err = max(b_lo - a_hi, a_lo - b_hi, 0.0)
                tol = base_tol + 0.3 * min(gap, height) + max(abs(s1), abs(s0)) * min(gap, 2)
                if err <= tol:
                    options.append((err + 0.05 * gap, i, j, d))
    options.sort()
    nxt: dict[int, tuple[int, int]] = {}
    prev: set[int] = set()
    for _, i, j, d in options:
        if i not in nxt and j not in prev:
            nxt[i] = (j, d)
            prev.add(j)
    curves = []
    for head in range(len(frags)):
        if head in prev:
            continue
        h = np.full(width, np.nan)
        lap = np.zeros(width, np.int64)
        conf = np.zeros(width)
        cls = np.zeros(width, np.int64)
        merged = np.zeros(width, bool)
        part = np.full(width, -1, np.int64)
        i, level, n = head, 0, 0
        while True:
            f = frags[i]
            h[f.cols], lap[f.cols], conf[f.cols], cls[f.cols], merged[f.cols] = f.h, level, f.conf, f.cls, f.merged
            part[f.cols] = n
            n += 1
            if i not in nxt:
                break
            i, d = nxt[i]
            level += d
        curves.append(Curve(h, lap, conf, cls, merged, part))
    curves.sort(key=lambda c: -c.samples)
    return curves


def trace_mask(
    mask: npt.NDArray[np.bool_],
    band: Band,
    prob: npt.NDArray[np.floating] | None = None,
    *,
    wrap: bool = False,
) -> list[Curve]:
    """Trace every curve of one class in one band of a mask (H, W): steps 1 and 2, the longest curve first."""
    runs = _in_band(runs_of(mask, prob), band)
    return link(fragments(runs, band), band, Rules(wrap=frozenset({1}) if wrap else frozenset()))


def _in_band(runs: Runs, band: Band, slack: float = 2.0) -> Runs:
    top, bottom = band.top[runs.col], band.bottom[runs.col]
    return runs.select((runs.centre >= top - slack) & (runs.centre <= bottom + slack))


def _off_border(runs: Runs, band: Band) -> Runs:
    """The runs whose centre is not on (or beyond) a border: a clipped curve's pen running along it."""
    h = band.bottom[runs.col] - runs.centre
    height = band.bottom[runs.col] - band.top[runs.col]
    return runs.select((h > EDGE_PX) & (h < height - EDGE_PX))


@dataclass(frozen=True)
class TracedCurve:
    """A registered curve as traced: per column its unwrapped height above the track's bottom border (rows, NaN
    where absent) and its confidence. Shapes: (W,) each. ``position`` = ``u / height`` is the track position."""

    track: int
    scale: CurveScale
    u: npt.NDArray[np.float64]
    conf: npt.NDArray[np.float64]
    height: float

    def value(self) -> npt.NDArray[np.float64]:
        """(W,) physical value per column (NaN where absent)."""
        return self.scale.value(self.u / self.height)


def trace_registered(
    masks: dict[int, npt.NDArray[np.bool_]],
    probs: dict[int, npt.NDArray[np.floating]],
    registration: Registration,
    costs: Costs | None = None,
) -> list[TracedCurve]:
    """Trace every registered curve of an image (step 3 of the module docstring), in registration order.

    Args:
        masks: class -> (H, W) bool, the pixels the decision rule gives that class.
        probs: class -> (H, W) float, its probability (weights of the run centres and the confidence).
    """
    costs = costs or Costs()
    out: list[TracedCurve] = []
    all_runs = {cls: runs_of(mask, probs.get(cls)) for cls, mask in masks.items()}
    for t, track in enumerate(registration.tracks):
        top, bottom = registration.band(t)
        band = Band(top, bottom)
        clipping = {c.cls for c in track.curves if c.offscale != "wrap"}
        clipping |= {c.backup_class for c in track.curves if c.offscale == "backup"}
        ink: dict[int, Runs] = {}
        for cls in sorted(_classes(track.curves)):
            if cls in all_runs:
                runs = _in_band(all_runs[cls], band)
                ink[cls] = _off_border(runs, band) if cls in clipping else runs
        n_runs = sum(r.col.size for r in ink.values())
        none: _Path = (np.full(band.width, np.nan), np.zeros(band.width), np.full(band.width, -1, np.int64))
        paths = [none] * len(track.curves)
        order = sorted(range(len(track.curves)), key=lambda k: -len(track.curves[k].picks))
        for _ in range(1 + ROUNDS):  # the most constrained first; then each again, the others' paths known
            for k in order:
                paths[k] = _follow(ink, track.curves[k], track.curves, band, costs, _taken(paths, k, n_runs))
        for k, (sc, (u, conf, run)) in enumerate(zip(track.curves, paths)):
            shared = (run >= 0) & (_taken(paths, k, n_runs)[np.maximum(run, 0)] > 0)
            conf = np.where(shared, MERGED_CONFIDENCE * conf, conf)  # the ink of two curves: either may be off
            u, conf = _bridge(u, conf, band, sc.offscale != "wrap")
            out.append(TracedCurve(t, sc, u, conf, band.height))
    return out


_Path = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]  # (u, conf, run), (W,) each


def _taken(paths: list[_Path], k: int, n_runs: int) -> npt.NDArray[np.int64]:
    """(n_runs,) how many paths other than path ``k`` take each run of the track."""
    taken = np.zeros(n_runs, np.int64)
    for j, (_, _, run) in enumerate(paths):
        if j != k:
            np.add.at(taken, run[run >= 0].astype(np.int64), 1)
    return taken


def _classes(scales: Iterable[CurveScale]) -> set[int]:
    """The classes of the ink of ``scales``: their own, and their backup traces'."""
    return {c.cls for c in scales} | {c.backup_class for c in scales if c.offscale == "backup"}


@dataclass(frozen=True)
class Costs:
    """The costs of a path in ``_follow``, in rows (the units of a track's height)."""

    reward: float = 0.2  # per column a segment spans (negative cost): a path goes on as long as its ink does
    ink: float = 0.1  # per sample on ink (negative cost): a path follows the ink of a steep dashed stroke
    hole: float = 0.05  # per column of a hole inside a segment (a dash space)
    apart: float = 2.0  # per row a sample across a hole lies off where the path's slope leads, beyond a tolerance
    bend: float = 0.01  # per row a sample lies off where the path's slope leads (to at most bend_cap rows)
    bend_cap: float = 6.0
    jump: float = 8.0  # a new segment (after a hole, no continuity asked)
    jump_per_row: float = 0.1  # per row between where the last segment ended and where the new one starts
    jump_per_row_mates: float = 1.0  # the same for a curve that shares its class (the new one may be another's)
    lap: float = 4.0  # per lap off scale where a curve with no pick starts
    shared: float = 0.25  # per sample on ink another curve's path takes


@dataclass(frozen=True)
class _Nodes:
    """Every place a curve may be: a run of one of its classes on one lap the rule allows. Shapes: (N,) each,
    sorted by column; heights unwrapped (rows); ``run`` numbers the track's runs (class-major), so that two
    curves on one run can be told."""

    col: npt.NDArray[np.int64]
    u: npt.NDArray[np.float64]
    lo: npt.NDArray[np.float64]
    hi: npt.NDArray[np.float64]
    conf: npt.NDArray[np.float64]
    lap: npt.NDArray[np.int64]
    run: npt.NDArray[np.int64]
    cls: npt.NDArray[np.int64]


def _nodes(ink: dict[int, Runs], scale: CurveScale, band: Band) -> _Nodes:
    """The nodes of a curve: its own class on lap 0 (every lap its picks are on, and one more either side, for
    ``wrap``), its backup class one lap up or down (``backup``)."""
    height = band.height
    pick_laps = [p.lap for p in scale.picks]
    own = [0]
    if scale.offscale == "wrap":
        own = list(range(min([-1, *pick_laps]) - 1, max([1, *pick_laps]) + 2))
    laps: dict[int, set[int]] = {scale.cls: set(own)}
    if scale.offscale == "backup":
        laps.setdefault(scale.backup_class, set()).update({-1, 1})
    parts: list[tuple[npt.NDArray[np.generic], ...]] = []
    offset = 0
    for cls in sorted(ink):
        runs = ink[cls]
        if cls in laps:
            h = band.bottom[runs.col] - runs.centre
            lo = band.bottom[runs.col] - runs.bottom
            hi = band.bottom[runs.col] - runs.top
            ids = offset + np.arange(runs.col.size)
            for lap in sorted(laps[cls]):
                shift = lap * height
                same = np.full(runs.col.size, lap, np.int64), ids, np.full(runs.col.size, cls, np.int64)
                parts.append((runs.col, h + shift, lo + shift, hi + shift, runs.conf, *same))
        offset += runs.col.size
    if not parts:
        e, i = np.zeros(0, np.float64), np.zeros(0, np.int64)
        return _Nodes(i, e, e, e, e, i, i, i)
    cols = [np.concatenate([p[k] for p in parts]) for k in range(8)]
    order = np.lexsort((cols[1], cols[0]))
    return _Nodes(*(c[order] for c in cols))


def _follow(
    ink: dict[int, Runs],
    scale: CurveScale,
    scales: tuple[CurveScale, ...],
    band: Band,
    costs: Costs,
    taken: npt.NDArray[np.int64],
) -> _Path:
    """One registered curve as the cheapest path through its picks: (u, conf, run) per column (W,) each, NaN /
    0 / -1 where it has no sample (costs and rules: ``docs/tracing.md``, step 4).

    The path visits at most one node (a run on a lap) per column, left to right. Two successive nodes no more than
    ``window`` columns apart are one segment; a hole opens only where ink ends and closes where it starts, and
    costs beyond a dash space. A new segment may start after any hole at a cost. The path goes through the node
    at each pick and never jumps over one. A segment is in state 0 until it holds a pick or ink of a class only
    this curve has, in state 1 after; only state 1 may end a segment (or the path), so a stretch of shared ink no
    pick lies on is never taken alone. ``taken`` (per track run) counts the other curves' paths on each run.
    """
    width, height = band.width, band.height
    nodes = _nodes(ink, scale, band)
    col, u, lo, hi, conf, lap, run = nodes.col, nodes.u, nodes.lo, nodes.hi, nodes.conf, nodes.lap, nodes.run
    cls = nodes.cls
    none: _Path = (np.full(width, np.nan), np.zeros(width), np.full(width, -1, np.int64))
    others = _classes([c for c in scales if c is not scale])
    mates = _classes([scale]) & others
    own = ~np.isin(cls, sorted(others))  # ink of a class no other curve of the track has is the curve's own
    picks = _pick_nodes(col, u, lap, scale, band)
    if col.size == 0 or not (picks or own.any()):
        return none
    per_row = costs.jump_per_row_mates if mates else costs.jump_per_row
    window = band.bridge() + 2
    space = max(3.0, 0.06 * height)  # a dash space may be this long whatever the path's slope
    bounds = np.searchsorted(col, np.arange(width + 1))
    n = col.size
    ends, starts = _loose_ends(col, lo, hi, bounds)
    cost = np.full((2, n), np.inf)
    slope = np.zeros((2, n))
    back = np.full((2, n, 2), -1, np.int64)  # (previous node, its state); -1: the path starts here
    pick_at = {int(col[i]): i for i in picks}
    first_pick = min(pick_at) if pick_at else width
    floor = 0  # no predecessor before the last pick's column
    gone, gone_at = np.inf, -1  # the cheapest state-1 path so far that may end a segment here, and its node
    for x in np.unique(col).tolist():
        a, b = int(bounds[x]), int(bounds[x + 1])
        wa = max(int(bounds[max(0, x - window)]), floor)
        best = np.full((2, b - a), np.inf)
        prev = np.full((2, b - a, 2), -1, np.int64)
        sl = np.zeros((2, b - a))
        if wa < a:
            g = (x - col[wa:a]).astype(np.float64)[None, :]
            s = slope[:, wa:a]  # (2, w)
            d = np.maximum(np.maximum(lo[a:b, None] - hi[None, wa:a], lo[None, wa:a] - hi[a:b, None]), 0.0)
            across = (g > 1.0) | (d > 1.0)  # not touching the sample before: a hole (k, w)
            # a hole only from where ink ends to where ink starts: a path never skips ink it could follow
            barred = across & ~(ends[None, wa:a] & starts[a:b, None])
            gap = np.hypot(g - 1.0, np.maximum(d - 1.0, 0.0))  # the hole's length along the stroke
            for f in (0, 1):
                off = np.abs(u[a:b, None] - (u[None, wa:a] + s[f][None, :] * g))
                c = (
                    cost[f, wa:a][None, :]
                    + (costs.hole - costs.reward) * (g - 1.0)
                    + costs.bend * np.minimum(off, costs.bend_cap)
                    + costs.apart * across * np.maximum(gap - space, 0.0)
                )
                c[barred] = np.inf
                j = np.argmin(c, axis=1)
                rows = np.arange(b - a)
                best[f] = c[rows, j]
                prev[f, :, 0], prev[f, :, 1] = wa + j, f
                raw = (u[a:b] - u[wa + j]) / (x - col[wa + j])
                sl[f] = slope[f, wa + j] + 0.3 * (raw - slope[f, wa + j])
        enter = 0  # a new segment's state
        fresh = np.full(b - a, np.inf)
        if x <= first_pick:
            fresh = costs.lap * np.abs(lap[a:b]) if not pick_at else np.zeros(b - a)
        if np.isfinite(gone):
            jump = gone + costs.jump + per_row * np.abs(u[a:b] - u[gone_at])
            take_jump = jump < fresh
            fresh_prev = np.where(take_jump, gone_at, -1)
            fresh = np.minimum(fresh, jump)
        else:
            fresh_prev = np.full(b - a, -1)
        better = fresh < best[enter]
        best[enter] = np.where(better, fresh, best[enter])
        prev[enter, better, 0] = fresh_prev[better]
        prev[enter, better, 1] = np.where(fresh_prev[better] >= 0, 1, -1)
        sl[enter, better] = 0.0
        best += costs.shared * np.minimum(taken[run[a:b]], 1) - costs.reward - costs.ink
        mine = own[a:b] & (best[0] < best[1])  # the curve's own ink: as good as a pick for the segment
        best[1, mine], prev[1, mine], sl[1, mine] = best[0, mine], prev[0, mine], sl[0, mine]
        best[0, own[a:b]] = np.inf
        if x in pick_at:
            i = pick_at[x] - a
            f = int(np.argmin(best[:, i]))
            keep_cost, keep_prev, keep_sl = best[f, i], prev[f, i].copy(), sl[f, i]
            best[:] = np.inf
            best[1, i], prev[1, i], sl[1, i] = keep_cost, keep_prev, keep_sl
            floor = a
            gone = np.inf
        cost[:, a:b], back[:, a:b], slope[:, a:b] = best, prev, sl
        j = int(np.argmin(best[1]))
        if best[1, j] < gone:
            gone, gone_at = float(best[1, j]), a + j
    if not np.isfinite(gone):
        return none
    out_u, out_conf, out_run = none[0].copy(), none[1].copy(), none[2].copy()
    i, f = gone_at, 1
    while i >= 0:
        out_u[col[i]], out_conf[col[i]], out_run[col[i]] = u[i], conf[i], run[i]
        i, f = int(back[f, i, 0]), int(back[f, i, 1])
    return out_u, out_conf, out_run


def _loose_ends(
    col: npt.NDArray[np.int64], lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64], bounds: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(N,) each: whether a node touches no node in the next column (its ink ends there), and none in the column
    before (its ink starts there)."""
    ends = np.ones(col.size, bool)
    starts = np.ones(col.size, bool)
    for x in np.unique(col).tolist():
        a, b = int(bounds[x]), int(bounds[x + 1])
        c, e = int(bounds[x + 1]), int(bounds[min(x + 2, bounds.size - 1)])
        if c == e:
            continue
        touch = (lo[c:e][None, :] <= hi[a:b, None] + 1.0) & (lo[a:b, None] <= hi[c:e][None, :] + 1.0)
        ends[a:b] &= ~touch.any(axis=1)
        starts[c:e] &= ~touch.any(axis=0)
    return ends, starts


def _pick_nodes(
    col: npt.NDArray[np.int64],
    u: npt.NDArray[np.float64],
    lap: npt.NDArray[np.int64],
    scale: CurveScale,
    band: Band,
) -> list[int]:
    """The node each pick lies on (its class's run on its lap nearest it, within 2 columns and a tenth of the
    track height), at most one per column; picks on nothing are left out."""
    height = band.height
    tol = max(3.0, 0.1 * height)
    found: dict[int, int] = {}
    for p in scale.picks:
        c = round(p.column)
        if not 0 <= c < band.width:
            continue
        want = band.bottom[c] - p.row + p.lap * height
        near = np.flatnonzero((np.abs(col - c) <= 2) & (lap == p.lap) & (np.abs(u - want) <= tol))
        if near.size:
            i = int(near[np.argmin(np.abs(u[near] - want) + 0.5 * np.abs(col[near] - c))])
            found.setdefault(int(col[i]), i)
    return sorted(found.values())


def _bridge(
    u: npt.NDArray[np.float64], conf: npt.NDArray[np.float64], band: Band, clipping: bool
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Interpolate holes of at most ``band.bridge()`` columns (dash spaces); on a clipping curve, not a hole that
    opens or closes at a border (the pen ran along it there: no value)."""
    known = np.flatnonzero(np.isfinite(u))
    if known.size < 2:
        return u, conf
    holes = (np.diff(known) > 1) & (np.diff(known) <= band.bridge() + 1)
    u, conf = u.copy(), conf.copy()
    height = band.height
    for a, b in zip(known[:-1][holes].tolist(), known[1:][holes].tolist()):
        ends = np.mod(u[[a, b]], height)  # height above the border of the lap each end is on
        if clipping and bool(np.any((ends <= 2 * EDGE_PX) | (ends >= height - 2 * EDGE_PX))):
            continue
        x = np.arange(a + 1, b)
        t = (x - a) / (b - a)
        u[x] = u[a] + t * (u[b] - u[a])
        conf[x] = conf[a] + t * (conf[b] - conf[a])
    return u, conf
