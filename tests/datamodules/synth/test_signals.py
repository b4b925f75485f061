"""Curve signals behave like their types (docs/generator.md, 'Curve signals'), measured on the full-scale
scene (no rendering).

Statistics per curve, on the plotted track position of a primary trace, over columns where it is logged and
on scale (unwrapped by its lap):

* static share: fraction of neighbouring column pairs whose position moves less than 0.002 track widths
  (0.4 px on a 200 px track);
* range used: 98th minus 2nd percentile of the position;
* jitter: median per-column move as a fraction of the range used;
* edges: 99th percentile of the per-column move (bed edges are smoothed by the tool response);
* crossings: how often two curves sharing a track swap sides by more than 0.02 track widths.

The bands below are derived from the spec, each with its reason; medians over many logs are tested, so the
bands describe the type, not one lucky log.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from datamodules.synth.generate import build_scene, full_shape
from datamodules.synth.signals import Trace

N_LOGS = 60


def _logged(tr: Trace) -> tuple[np.ndarray, np.ndarray]:
    """(unwrapped positions where logged, per-column moves within a piece and on scale)."""
    p = tr.pos
    ok = np.isfinite(p[1:]) & np.isfinite(p[:-1]) & (tr.seg[1:] == tr.seg[:-1]) & ~tr.clipped[1:] & ~tr.clipped[:-1]
    raw = (p + tr.lap)[np.isfinite(p)]
    return raw, np.abs(np.diff(p))[ok]


def _crossings(a: Trace, b: Trace, band: float = 0.02) -> tuple[int, int]:
    """(side swaps by more than ``band``, columns where both are logged)."""
    d = (a.pos + a.lap) - (b.pos + b.lap)
    d = d[np.isfinite(d)]
    side = np.sign(d) * (np.abs(d) > band)
    side = side[side != 0]
    return int(np.count_nonzero(side[1:] != side[:-1])), d.size


@pytest.fixture(scope="module")
def stats() -> tuple[dict, dict]:
    per_kind: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    pairs: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for i in range(N_LOGS):
        task = ("binary", "multiclass")[i % 2]
        h, w = full_shape(i, seed=11, task=task)
        scene = build_scene(i, seed=11, task=task, full_h=h, full_w=w)
        primaries = [tr for tr in scene.traces if tr.info.backup_of < 0]
        for tr in primaries:
            raw, move = _logged(tr)
            span = float(np.percentile(raw, 98) - np.percentile(raw, 2))
            k = per_kind[tr.info.kind]
            k["static"].append(float((move < 0.002).mean()))
            k["range"].append(span)
            k["jitter"].append(float(np.median(move)) / max(span, 1e-3))
            k["edges"].append(float(np.percentile(move, 99)))
        for j, a in enumerate(primaries):
            for b in primaries[j + 1 :]:
                if a.track == b.track:
                    pairs[tuple(sorted((a.info.kind, b.info.kind)))].append(_crossings(a, b))
    return per_kind, pairs


def _median(stats, kind: str, what: str) -> float:
    values = stats[0][kind][what]
    assert len(values) >= 3, f"too few {kind} curves in the sample"
    return float(np.median(values))


# (static share, range used) bands per type, from docs/generator.md, 'Curve types and scales' and 'Curve signals':
BANDS = {
    # GR: blocky and noisy (counting statistics keep it moving); sand 15-60 vs shale 80-140 API on 0-150.
    "GR": ((0.03, 0.45), (0.3, 0.95)),
    # SP: smooth, deflecting only in sands off a drifting shale baseline: long quiet stretches.
    "SP": ((0.3, 0.95), (0.2, 0.8)),
    # Caliper: flat at bit size with washout bumps (<= 4 in on a 10 in scale).
    "CALI": ((0.7, 1.0), (0.0, 0.45)),
    # Resistivity: blocky log10 R with large contrasts over 2-4 decades; smooth deep reading.
    "RES_DEEP": ((0.15, 0.8), (0.2, 1.0)),
    # Neutron, density, sonic: bed contrasts of 0.1-0.4 of the scale, noisy-ish.
    "NPHI": ((0.1, 0.6), (0.2, 0.7)),
    "RHOB": ((0.1, 0.6), (0.2, 0.7)),
    "DT": ((0.1, 0.7), (0.15, 0.7)),
}


@pytest.mark.parametrize("kind", sorted(BANDS))
def test_type_statistics_fall_in_their_bands(stats, kind):
    (s_lo, s_hi), (r_lo, r_hi) = BANDS[kind]
    assert s_lo <= _median(stats, kind, "static") <= s_hi
    assert r_lo <= _median(stats, kind, "range") <= r_hi


@pytest.mark.parametrize("kind", sorted(BANDS))
def test_no_square_waves_or_jitter(stats, kind):
    """Bed edges are smoothed by the tool (99% of moves < 0.15 track widths per column: a full-track step
    over sigma >= 1.5 px moves at most 0.27 per column, and beds rarely contrast by a full track), and noise
    is small against the signal (median move < 3% of the range used)."""
    assert _median(stats, kind, "edges") < 0.15
    assert _median(stats, kind, "jitter") < 0.03


def test_caliper_is_the_flattest_and_gr_the_busiest(stats):
    static = {k: _median(stats, k, "static") for k in BANDS}
    assert max(static, key=static.get) == "CALI"
    assert static["GR"] < static["SP"]


@pytest.mark.parametrize(
    ("pair", "min_share"),
    [
        (("NPHI", "RHOB"), 0.8),  # shale separates them, gas sands and clean beds bring them across
        (("RES_DEEP", "RES_SHALLOW"), 0.8),  # invasion profile flips at fluid contacts, overlay in shale
    ],
)
def test_curves_sharing_a_track_cross_where_the_rock_changes(stats, pair, min_share):
    """Crossings happen (shared lithology), but at bed and fluid changes, not at every noise wiggle: at most
    300 per 10k columns (independent noise would cross thousands of times)."""
    found = stats[1][pair]
    assert len(found) >= 3
    assert np.mean([n > 0 for n, _ in found]) >= min_share
    assert max(n / cols * 10_000 for n, cols in found) < 300


def test_off_scale_handling_is_mixed():
    """clip 0.6 / wrap 0.25 / backup 0.15 per primary (backup falls back to clip when not needed)."""
    modes: dict[str, int] = defaultdict(int)
    for i in range(40):
        h, w = full_shape(i, seed=12, task="binary")
        for tr in build_scene(i, seed=12, task="binary", full_h=h, full_w=w).traces:
            modes[tr.info.offscale if tr.info.backup_of < 0 else "trace"] += 1
            if tr.info.offscale == "wrap":  # wrapped positions stay on the track; laps carry the rest
                p = tr.pos[np.isfinite(tr.pos)]
                assert (p >= 0).all() and (p < 1).all()
    total = sum(modes.values()) - modes["trace"]
    assert 0.4 < modes["clip"] / total < 0.85 and 0.1 < modes["wrap"] / total < 0.4
    assert modes["backup"] == modes["trace"]  # every primary on backup has its trace
