"""Registered curves as the cheapest path through their picks (the second of the two tracers of ``models.traced``;
rules in ``docs/tracing.md``).

Each registered curve is one path over *nodes*: a run of its class on a lap its rule allows (lap 0; for ``wrap``
every lap its picks are on and one more either side; for ``backup`` its backup class one lap up or down), heights
unwrapped. The path takes at most one node per column, left to right, goes through the node at each of its picks,
and pays for every bend, hole and jump (``Costs``); the curves of a track are followed in turn, each seeing the
ink the others took. ``models.tracing`` traces the same ink another way (fragments linked into chains, cut at
their meetings); ``models.traced`` keeps the samples where both agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from datamodules.registration import CurveScale, Registration
from models.tracing import MERGED_CONFIDENCE, Band, Runs, TracedCurve, in_band, off_border, runs_of

ROUNDS = 1  # each curve of a track is followed again this many times, the others' paths known


def trace_paths(
    masks: dict[int, npt.NDArray[np.bool_]],
    probs: dict[int, npt.NDArray[np.floating]],
    registration: Registration,
    costs: Costs | None = None,
) -> list[TracedCurve]:
    """Every registered curve of an image as the cheapest path through its picks, in registration order (holes
    not bridged: ``models.traced`` does that).

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
                runs = in_band(all_runs[cls], band)
                ink[cls] = off_border(runs, band) if cls in clipping else runs
        n_runs = sum(r.col.size for r in ink.values())
        if n_runs == 0:  # no ink of the track's classes: every curve is absent
            out += [
                TracedCurve(t, sc, np.full(band.width, np.nan), np.zeros(band.width), band.height)
                for sc in track.curves
            ]
            continue
        none: _Path = (np.full(band.width, np.nan), np.zeros(band.width), np.full(band.width, -1, np.int64))
        paths = [none] * len(track.curves)
        order = sorted(range(len(track.curves)), key=lambda k: -len(track.curves[k].picks))
        for _ in range(1 + ROUNDS):  # the most constrained first; then each again, the others' paths known
            for k in order:
                paths[k] = _follow(ink, track.curves[k], track.curves, band, costs, _taken(paths, k, n_runs))
        for k, (sc, (u, conf, run)) in enumerate(zip(track.curves, paths)):
            shared = (run >= 0) & (_taken(paths, k, n_runs)[np.maximum(run, 0)] > 0)
            conf = np.where(shared, MERGED_CONFIDENCE * conf, conf)  # the ink of two curves: either may be off
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
    0 / -1 where it has no sample (costs and rules: ``docs/tracing.md``).

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
        if p.lap != 0 and scale.offscale == "backup":  # on a backup trace: the chain tracer's (see the docstring)
            continue
        c = round(p.column)
        if not 0 <= c < band.width:
            continue
        want = band.bottom[c] - p.row + p.lap * height
        near = np.flatnonzero((np.abs(col - c) <= 2) & (lap == p.lap) & (np.abs(u - want) <= tol))
        if near.size:
            i = int(near[np.argmin(np.abs(u[near] - want) + 0.5 * np.abs(col[near] - c))])
            found.setdefault(int(col[i]), i)
    return sorted(found.values())
