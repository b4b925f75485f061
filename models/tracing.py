"""Curve tracing: per-column runs of a class linked across columns into curves (rules in ``docs/tracing.md``).

Three steps, each a function:

1. ``fragments``: in one track band and one class, a column-by-column tracker links each column's runs
   (``runs_of``) to the curves it follows by the position each predicts from its recent slope. Where two curves
   of the class meet in one run (a crossing, an overlay), both take it, at reduced confidence; when they part again
   a short meeting is resolved by each curve's slope before it, a long one by their order before it. Holes no
   longer than ``bridge`` columns (the spaces of a dashed line) stay inside a fragment.
2. ``link``: fragments are joined end to start across longer holes (pen-up gaps, blank stretches under a scale
   stack) where their extrapolations meet, and across a track edge one lap up or down where the off-scale rule
   allows it: a wrapped curve's re-entry at the opposite edge, and a backup trace taking over from its clipped
   primary (possibly of another class). Each joined chain is one curve with a relative lap per column.
3. ``trace_chains``: for a registration, every track and class is traced, samples on a clipped border are
   dropped (they carry no value), and each registered curve takes the chain through its pick (or, alone in its
   class, the longest); its lap is fixed by the pick (or the lap most of it is on). ``bridge_holes``
   interpolates short holes; ``models.traced`` keeps what this tracer and ``models.tracing_paths`` agree on.

Everything is numpy on the CPU; positions are heights above the track's bottom border in rows (``h``), unwrapped
as ``u = h + lap * H`` for a track ``H`` rows high, which is affine in the track position ``u / H``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from datamodules.registration import CurveScale, Pick, Registration

EDGE_PX = 1.5  # a sample this close to a clipping border (or beyond it) is off scale
MERGED_CONFIDENCE = 0.4  # a sample from a run shared with another curve: the centre of both curves' ink, not this
# curve's position, so below the LAS file's threshold (``models.las.MIN_CONFIDENCE``, 0.5) even at probability 1
STRAIGHT = 0.02  # a hole is filled where the curve's slope either side carries it this near the line across it
SLOPE_SPAN = 3  # columns over which that slope is measured


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
        """The longest hole (columns) a fragment is followed across: a dash space or a meeting, about an eighth of the
        track height."""
        return max(3, round(0.12 * self.height))

    def fill(self) -> int:
        """The longest hole (columns) interpolated in a traced curve: a dash space, about 6% of the track height.
        A longer one is where another curve's ink was (a meeting gives neither curve a position) or the pen was up:
        it stays a hole, as a value interpolated across it can be off by the curve's whole excursion."""
        return max(3, round(0.06 * self.height))


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

    def unwrapped(self, height: float, offset: int | npt.NDArray[np.int64] = 0) -> npt.NDArray[np.float64]:
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
    runs = in_band(runs_of(mask, prob), band)
    return link(fragments(runs, band), band, Rules(wrap=frozenset({1}) if wrap else frozenset()))


def in_band(runs: Runs, band: Band, slack: float = 2.0) -> Runs:
    top, bottom = band.top[runs.col], band.bottom[runs.col]
    return runs.select((runs.centre >= top - slack) & (runs.centre <= bottom + slack))


def off_border(runs: Runs, band: Band) -> Runs:
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


def trace_chains(
    masks: dict[int, npt.NDArray[np.bool_]],
    probs: dict[int, npt.NDArray[np.floating]],
    registration: Registration,
) -> list[TracedCurve]:
    """Trace every registered curve of an image (step 3 of the module docstring), in registration order.

    Args:
        masks: class -> (H, W) bool, the pixels the decision rule gives that class.
        probs: class -> (H, W) float, its probability (weights of the run centres and the confidence).
    """
    out: list[TracedCurve] = []
    all_runs = {cls: runs_of(mask, probs.get(cls)) for cls, mask in masks.items()}
    for t, track in enumerate(registration.tracks):
        top, bottom = registration.band(t)
        band = Band(top, bottom)
        rules = Rules(
            wrap=frozenset(c.cls for c in track.curves if c.offscale == "wrap"),
            backup=frozenset((c.cls, c.backup_class) for c in track.curves if c.offscale == "backup"),
        )
        clipping = {c.cls for c in track.curves if c.offscale != "wrap"}
        clipping |= {c.backup_class for c in track.curves if c.offscale == "backup"}
        classes = {c.cls for c in track.curves} | {c.backup_class for c in track.curves if c.offscale == "backup"}
        frags: list[Fragment] = []
        for cls in sorted(classes):
            if cls not in all_runs:
                continue
            runs = in_band(all_runs[cls], band)
            if cls in clipping:
                runs = off_border(runs, band)
            frags += fragments(runs, band, cls)
        chains = link(frags, band, rules)
        found = _assign(chains, track.curves, band)
        out += [TracedCurve(t, c, *found[k], band.height) for k, c in enumerate(track.curves)]
    return out


def _meetings(chain: Curve) -> npt.NDArray[np.int64]:
    """(W,) how many places where it may have been swapped with another curve the chain has passed at each
    column: meetings (stretches of shared samples) and joins of fragments. It numbers the chain's pieces."""
    m = chain.merged & np.isfinite(chain.h)
    begins = m & ~np.concatenate([[False], m[:-1]])
    present = np.flatnonzero(chain.part >= 0)
    joins = np.zeros(chain.h.size, bool)
    joins[present[1:][np.diff(chain.part[present]) != 0]] = True
    return np.cumsum(begins | joins)


def _locate(chains: list[Curve], pick: Pick, classes: tuple[int, ...], band: Band) -> tuple[int, int] | None:
    """(chain, column) of the sample of one of ``classes`` nearest a pick (within 2 columns and a tenth of the track
    height), or None."""
    col = round(pick.column)
    h = float(band.bottom[min(max(col, 0), band.width - 1)] - pick.row)
    tol = max(3.0, 0.1 * band.height)
    best: tuple[float, int, int] | None = None
    for i, c in enumerate(chains):
        for x in range(max(0, col - 2), min(band.width, col + 3)):
            if c.cls[x] in classes and abs(c.h[x] - h) <= tol:
                d = abs(c.h[x] - h) + 0.5 * abs(x - col)
                if best is None or d < best[0]:
                    best = (d, i, x)
    return None if best is None else (best[1], best[2])


def _assign(
    chains: list[Curve], scales: tuple[CurveScale, ...], band: Band
) -> dict[int, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """Each registered curve's (u, conf), (W,) each, from the pieces of the chains (step 3 of the module docstring).

        A chain is cut at its meetings into pieces. A piece goes to the curve whose pick on the same chain is the
        fewest meetings away (a tie gives it to none; a piece holding several curves' picks is shared by
        ``_sides``), on that pick's lap; a curve alone in its class (counting backup
        traces) also takes the pieces of chains no pick lies on, on the lap of the samples next to them. Pieces nearer
        their pick are placed first, a column once. A meeting's own samples (the centre of two curves' ink) go to none:
    a short one is bridged from both sides.
    """
    height, width = band.height, band.width
    sole = Counter([c.cls for c in scales] + [c.backup_class for c in scales if c.offscale == "backup"])
    meet = [_meetings(c) for c in chains]
    records: dict[int, list[tuple[int, int, int, int]]] = {}  # chain -> (curve, piece, lap offset, column)
    for k, scale in enumerate(scales):
        for p in scale.picks:
            hit = _locate(chains, p, (scale.cls, scale.backup_class), band)
            if hit is not None:
                i, x = hit
                records.setdefault(i, []).append((k, int(meet[i][x]), p.lap - int(chains[i].lap[x]), x))
    # (distance, -size, chain, its columns, curve, lap offset per column)
    jobs: list[tuple[float, int, int, npt.NDArray[np.bool_], int, npt.NDArray[np.int64]]] = []
    unpicked: list[tuple[int, int, int]] = []  # (-size, chain, curve): chains no pick lies on, for a curve alone
    for i, c in enumerate(chains):
        present = np.isfinite(c.h) & ~c.merged
        if i not in records:
            classes = set(c.cls[present].tolist())
            alone = [
                k
                for k, sc in enumerate(scales)
                if (sc.cls in classes and sole[sc.cls] == 1)
                or (sc.offscale == "backup" and sc.backup_class in classes and sole[sc.backup_class] == 1)
            ]
            if len(alone) == 1:
                unpicked.append((-int(present.sum()), i, alone[0]))
            continue
        for q in np.unique(meet[i][present]).tolist():
            dist = {k: min(abs(q - r[1]) for r in records[i] if r[0] == k) for k, _, _, _ in records[i]}
            low = min(dist.values())
            winners = [k for k, d in dist.items() if d == low]
            piece = meet[i] == q
            if low == 0 and len(winners) > 1:  # several curves' picks on this very piece: each takes its side
                sides = _sides([r for r in records[i] if r[1] == q], width)
                shares = [(k, piece & sides[k]) for k in winners]
            else:  # one nearest curve takes the piece; a tie between picks on other pieces gives it to none
                shares = [(winners[0], piece)] if len(winners) == 1 else []
            for k, cols in shares:
                near = [r for r in records[i] if r[0] == k and abs(q - r[1]) == low]
                offset = _nearest_offset([r[3] for r in near], [r[2] for r in near], width)
                jobs.append((float(low), -int(np.sum(present & cols)), i, cols, k, offset))
    jobs.sort(key=lambda j: (j[0], j[1]))
    out = {k: (np.full(width, np.nan), np.zeros(width)) for k in range(len(scales))}

    def place(i: int, k: int, offset: int | npt.NDArray[np.int64], cols: npt.NDArray[np.bool_] | None = None) -> None:
        c, sc = chains[i], scales[k]
        allowed = [sc.cls, sc.backup_class] if sc.offscale == "backup" else [sc.cls]
        take = np.isfinite(c.h) & ~c.merged & np.isin(c.cls, allowed)
        if cols is not None:
            take &= cols
        u, conf = out[k]
        at = np.flatnonzero(take & ~np.isfinite(u))
        u[at] = c.unwrapped(height, offset)[at]
        conf[at] = c.conf[at]

    for _, _, i, cols, k, offset in jobs:
        place(i, k, offset, cols)
    for _ in range(2):  # a chain of backup trace alone takes its lap from its neighbours: after them
        deferred = []
        for size, i, k in sorted(unpicked):
            lap = _lap_from_neighbours(chains[i], out[k][0], height, scales[k])
            if lap is None:
                deferred.append((size, i, k))
            else:
                place(i, k, lap)
        unpicked = deferred
    return out


def _sides(picks: list[tuple[int, int, int, int]], width: int) -> dict[int, npt.NDArray[np.bool_]]:
    """curve -> (W,) the columns of one piece of chain that go to it, where the piece holds the picks (records
    ``(curve, piece, lap offset, column)``) of several curves: the chain went from one curve's ink to another's,
    without a meeting, somewhere between two of its picks that belong to different curves. Those columns go to
    none; the others to the curve whose picks are on both sides of them (or on the one side there is)."""
    order = sorted(picks, key=lambda r: r[3])
    at = np.array([r[3] for r in order])
    who = np.array([r[0] for r in order])
    x = np.arange(width)
    left = np.searchsorted(at, x, side="right") - 1  # the nearest pick at or before each column
    right = np.searchsorted(at, x, side="left")  # at or after
    lw = np.where(left >= 0, who[np.clip(left, 0, None)], -1)
    rw = np.where(right < at.size, who[np.clip(right, None, at.size - 1)], -1)
    owner = np.where(lw < 0, rw, np.where((rw < 0) | (rw == lw), lw, -2))
    return {int(k): owner == k for k in np.unique(who)}


def _nearest_offset(cols: list[int], offsets: list[int], width: int) -> npt.NDArray[np.int64]:
    """(W,) per column the lap offset of the nearest of the picks at ``cols``: where the picks on one piece of a chain
    disagree on its lap (a clipped curve's ink run on into its backup trace), each part follows its nearest pick."""
    order = np.argsort(cols)
    at, off = np.asarray(cols, np.float64)[order], np.asarray(offsets, np.int64)[order]
    if np.all(off == off[0]):
        return np.full(width, off[0], np.int64)
    mids = (at[1:] + at[:-1]) / 2.0
    return off[np.searchsorted(mids, np.arange(width))]


def _lap_from_neighbours(c: Curve, u: npt.NDArray[np.float64], height: float, scale: CurveScale) -> int | None:
    """The lap offset of a chain no pick lies on: from the curve's samples next to it (within half a track height
    of columns), else the lap most of its own class's samples are on taken as 0 (a curve is on scale most of the
    time). None for a chain of backup trace alone with no neighbour (its lap cannot be told)."""
    cols = np.flatnonzero(np.isfinite(c.h))
    known = np.flatnonzero(np.isfinite(u))
    left, right = known[known < cols[0]], known[known > cols[-1]]
    gaps = [(int(cols[0] - left[-1]), int(left[-1]), int(cols[0]))] if left.size else []
    gaps += [(int(right[0] - cols[-1]), int(right[0]), int(cols[-1]))] if right.size else []
    if gaps and min(gaps)[0] <= height / 2:
        _, there, here = min(gaps)
        return round(float(u[there] - c.unwrapped(height)[here]) / height)
    own = c.cls[cols] == scale.cls
    if not own.any():
        return None
    return -int(Counter(c.lap[cols][own].tolist()).most_common(1)[0][0])


def bridge_holes(
    u: npt.NDArray[np.float64], conf: npt.NDArray[np.float64], band: Band, clipping: bool
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Interpolate holes of at most ``band.fill()`` columns (dash spaces) where the curve goes into the hole and
    comes out of it along the line across it (``_straight_across``); on a clipping curve, not a hole that opens or
    closes at a border (the pen ran along it there: no value)."""
    known = np.flatnonzero(np.isfinite(u))
    if known.size < 2:
        return u, conf
    holes = (np.diff(known) > 1) & (np.diff(known) <= band.fill() + 1)
    u, conf = u.copy(), conf.copy()
    height = band.height
    for a, b in zip(known[:-1][holes].tolist(), known[1:][holes].tolist()):
        ends = np.mod(u[[a, b]], height)  # height above the border of the lap each end is on
        if clipping and bool(np.any((ends <= 2 * EDGE_PX) | (ends >= height - 2 * EDGE_PX))):
            continue
        if not _straight_across(u, known, a, b, height):
            continue
        x = np.arange(a + 1, b)
        t = (x - a) / (b - a)
        u[x] = u[a] + t * (u[b] - u[a])
        conf[x] = conf[a] + t * (conf[b] - conf[a])
    return u, conf


def _straight_across(u: npt.NDArray[np.float64], known: npt.NDArray[np.int64], a: int, b: int, height: float) -> bool:
    """Whether the curve's slope on each side of the hole from column ``a`` to ``b`` (over at least ``SLOPE_SPAN``
    columns of samples before ``a`` and after ``b``) carries it to within ``STRAIGHT`` of the track height of the
    line across the hole at its middle: a dash space in a curve, not a peak its tracers lost (a steep excursion
    whose ink was not followed, filled by a chord far from it). True where a side has too few samples to tell."""
    mid = (a + b) / 2.0
    chord = (u[a] + u[b]) / 2.0
    tol = max(2.0, STRAIGHT * height)
    before = known[known <= a - SLOPE_SPAN]
    after = known[known >= b + SLOPE_SPAN]
    if before.size:
        p = int(before[-1])
        if abs(u[a] + (u[a] - u[p]) / (a - p) * (mid - a) - chord) > tol:
            return False
    if after.size:
        q = int(after[0])
        if abs(u[b] - (u[q] - u[b]) / (q - b) * (b - mid) - chord) > tol:
            return False
    return True
