"""Curve tracing on constructed masks whose curves are known exactly: crossings, a wrap-around, a backup trace, a
gap, a curve clipped on a border, three curves of one class in one track."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.registration import CurveScale, Pick, Registration, TrackScale
from models.extraction import run_centres
from models.las import MIN_CONFIDENCE
from models.traced import AGREE, trace_registered
from models.tracing import Band, Curve, _assign, bridge_holes, runs_of, trace_chains, trace_mask
from models.tracing_paths import trace_paths

H_IMG, W = 60, 240
TOP, BOTTOM = 10.0, 50.0  # one track, 40 rows high
HEIGHT = BOTTOM - TOP


def _band() -> Band:
    return Band(np.full(W, TOP), np.full(W, BOTTOM))


def _draw(mask: np.ndarray, rows: np.ndarray, half: float = 1.0) -> None:
    """Ink a connected x-monotone stroke through ``rows`` (W,) (NaN = pen up), ``half`` rows either side."""
    for x in np.flatnonzero(np.isfinite(rows)):
        ends = [rows[x]]
        for n in (x - 1, x + 1):
            if 0 <= n < rows.size and np.isfinite(rows[n]):
                ends.append((rows[x] + rows[n]) / 2)  # reach halfway to the neighbours: no holes in steep parts
        lo, hi = int(np.floor(min(ends) - half + 0.5)), int(np.ceil(max(ends) + half - 0.5))
        mask[max(lo, 0) : min(hi, mask.shape[0] - 1) + 1, x] = True


def _row(pos: np.ndarray) -> np.ndarray:
    """Row of track position ``pos`` (0 = bottom border, 1 = top)."""
    return BOTTOM - pos * HEIGHT


def _following(curves, truth_rows: np.ndarray, at: int) -> int:
    """Index of the traced curve whose sample at column ``at`` is on ``truth_rows``."""
    hits = [i for i, c in enumerate(curves) if np.isfinite(c.h[at]) and abs(BOTTOM - c.h[at] - truth_rows[at]) < 1.5]
    assert len(hits) == 1, f"{len(hits)} traced curves at column {at}"
    return hits[0]


def _agrees(h: np.ndarray, truth_rows: np.ndarray, tol: float = 1.0) -> float:
    """Share of the traced samples within ``tol`` rows of the truth."""
    ok = np.isfinite(h) & np.isfinite(truth_rows)
    return float(np.mean(np.abs(BOTTOM - h[ok] - truth_rows[ok]) <= tol)) if ok.any() else 0.0


def test_runs_match_the_extractions_run_centres():
    rng = np.random.default_rng(0)
    mask = rng.random((H_IMG, 50)) < 0.3
    prob = rng.random((H_IMG, 50)).astype(np.float32)
    runs = runs_of(mask, prob)
    centres = run_centres(torch.from_numpy(mask)[None], torch.from_numpy(prob)[None])[0].numpy()
    cols, rows = np.nonzero(np.isfinite(centres).T)
    order = np.lexsort((rows, cols))
    np.testing.assert_array_equal(runs.col, cols[order])
    np.testing.assert_allclose(runs.centre, centres[rows[order], cols[order]], rtol=1e-5)
    np.testing.assert_array_equal(runs.bottom, rows[order])  # run_centres writes at each run's last row


def test_two_crossing_curves_of_one_class_keep_their_identity():
    x = np.arange(W, dtype=np.float64)
    up, down = _row(0.1 + 0.8 * x / W), _row(0.9 - 0.8 * x / W)  # cross in the middle
    mask = np.zeros((H_IMG, W), bool)
    _draw(mask, up)
    _draw(mask, down)
    curves = trace_mask(mask, _band())
    assert len(curves) == 2
    a, b = _following(curves, up, 5), _following(curves, down, 5)
    assert a != b
    assert _following(curves, up, W - 5) == a and _following(curves, down, W - 5) == b  # straight through
    for i, truth in ((a, up), (b, down)):
        assert curves[i].samples > 0.9 * W
        alone = np.where(curves[i].merged, np.nan, curves[i].h)  # where they share a run, its centre is both's
        assert _agrees(alone, truth) > 0.95


def test_a_wrapped_curve_is_one_curve_on_successive_laps():
    x = np.arange(W, dtype=np.float64)
    pos = 0.3 + 1.4 * x / W  # leaves the top at x ~ 120 and comes back at the bottom one lap up
    mask = np.zeros((H_IMG, W), bool)
    plotted = pos - np.floor(pos)
    rows = _row(plotted)
    rows[np.abs(np.diff(np.floor(pos), prepend=0.0)) > 0] = np.nan  # pen up where it jumps
    near_edge = (plotted < 0.03) | (plotted > 0.97)
    rows[near_edge] = np.nan  # the ink on the border lines is not the curve's
    _draw(mask, rows)
    curves = trace_mask(mask, _band(), wrap=True)
    assert len(curves) == 1
    c = curves[0]
    u = c.unwrapped(HEIGHT, -int(c.lap[np.isfinite(c.h)][0]))
    ok = np.isfinite(u)
    assert ok.sum() > 0.9 * W
    np.testing.assert_allclose(u[ok] / HEIGHT, pos[ok], atol=1.5 / HEIGHT)
    assert set(c.lap[ok].tolist()) == {int(c.lap[ok][0]), int(c.lap[ok][0]) + 1}
    without = trace_mask(mask, _band(), wrap=False)  # clip rules: the re-entry is another curve
    assert len(without) == 2


def _registration(*curves: CurveScale) -> Registration:
    return Registration(
        width=W,
        height=H_IMG,
        depth_unit="ft",
        depth_points=np.array([[0.0, 1000.0], [W - 1.0, 1000.0 + (W - 1) * 0.5]]),
        tracks=(TrackScale(TOP, BOTTOM, tuple(curves)),),
    )


def _scale(mnemonic: str, cls: int, offscale: str = "clip", backup_class: int | None = None, picks=()) -> CurveScale:
    backup = cls if backup_class is None else backup_class
    return CurveScale(cls, mnemonic, "GAPI", 0.0, 150.0, "linear", offscale, backup, tuple(picks))


def _trace(masks: dict[int, np.ndarray], reg: Registration):
    return trace_registered(masks, {c: m.astype(np.float32) for c, m in masks.items()}, reg)


def test_a_backup_trace_is_joined_to_its_primary_one_lap_up():
    x = np.arange(W, dtype=np.float64)
    pos = 0.55 + 0.75 * np.sin(2 * np.pi * x / W)  # above the top (pos > 1) for x ~ 35-85
    over = pos > 1.0
    primary, backup = np.zeros((H_IMG, W), bool), np.zeros((H_IMG, W), bool)
    p_rows = np.where(over | (pos > 0.97), np.nan, _row(pos))  # clipped: along the border, which is not the curve
    b_rows = np.where(over & (pos - 1 > 0.03), _row(pos - 1), np.nan)  # the overflow on the shifted scale
    _draw(primary, p_rows)
    _draw(backup, b_rows)
    reg = _registration(_scale("GR", 1, "backup", backup_class=2, picks=[Pick(60.0, float(b_rows[60]), lap=1)]))
    (gr,) = _trace({1: primary, 2: backup}, reg)
    got = gr.u / HEIGHT
    assert np.isfinite(got[over]).mean() > 0.8  # the backup's stretch is the curve's, one lap up
    ok = np.isfinite(got)
    np.testing.assert_allclose(got[ok], pos[ok], atol=1.5 / HEIGHT)
    np.testing.assert_allclose(gr.value()[ok], 150.0 * pos[ok], atol=150.0 * 1.5 / HEIGHT)


def test_a_gap_stays_a_gap_and_the_curve_goes_on_after_it():
    x = np.arange(W, dtype=np.float64)
    truth = _row(0.5 + 0.3 * np.sin(2 * np.pi * x / 160))
    rows = truth.copy()
    rows[90:140] = np.nan  # a 50-column pen-up, longer than a dash space
    mask = np.zeros((H_IMG, W), bool)
    _draw(mask, rows)
    (gr,) = _trace({1: mask}, _registration(_scale("GR", 1)))
    assert np.isnan(gr.u[92:138]).all()
    ok = np.isfinite(gr.u)
    assert ok[:88].all() and ok[142:].all()
    np.testing.assert_allclose(BOTTOM - gr.u[ok], truth[ok], atol=1.0)


def test_short_dash_spaces_are_bridged():
    x = np.arange(W, dtype=np.float64)
    truth = _row(0.5 + 0.3 * np.sin(2 * np.pi * x / 160))
    rows = np.where((x % 8) < 5, truth, np.nan)  # dashes of 5 columns, spaces of 3
    mask = np.zeros((H_IMG, W), bool)
    _draw(mask, rows, half=0.6)
    (gr,) = _trace({1: mask}, _registration(_scale("GR", 1)))
    assert np.isfinite(gr.u[2:-3]).all()
    np.testing.assert_allclose(BOTTOM - gr.u[2:-3], truth[2:-3], atol=1.2)


def test_a_curve_clipped_on_the_border_has_no_value_there():
    x = np.arange(W, dtype=np.float64)
    pos = 0.5 + 0.7 * np.sin(2 * np.pi * x / W)
    rows = _row(np.clip(pos, 0.0, 1.0))  # the pen runs along the top border where the value is off scale
    mask = np.zeros((H_IMG, W), bool)
    _draw(mask, rows)
    (gr,) = _trace({1: mask}, _registration(_scale("GR", 1)))
    off = pos > 1.0
    assert np.isnan(gr.u[off]).all()
    on = (pos < 0.9) & (pos > 0.1)
    assert np.isfinite(gr.u[on]).all()
    np.testing.assert_allclose(gr.u[on] / HEIGHT, pos[on], atol=1.0 / HEIGHT)


def test_a_binary_track_with_three_curves_yields_three_curves():
    x = np.arange(W, dtype=np.float64)
    truths = [_row(base + 0.08 * np.sin(2 * np.pi * x / p)) for base, p in ((0.2, 90), (0.5, 130), (0.8, 70))]
    mask = np.zeros((H_IMG, W), bool)
    for t in truths:
        _draw(mask, t)
    curves = trace_mask(mask, _band())
    assert len(curves) == 3
    matched = {_following(curves, t, 10) for t in truths}
    assert matched == {0, 1, 2}
    for t in truths:
        assert _agrees(curves[_following(curves, t, 10)].h, t) > 0.95

    # Registered with a pick on each, every mnemonic gets its own curve.
    picks = [Pick(60.0, float(t[60])) for t in truths]
    scales = [_scale(name, 1, picks=[p]) for name, p in zip(("GR", "SP", "CALI"), picks)]
    traced = _trace({1: mask}, _registration(*scales))
    for tc, truth in zip(traced, truths):
        ok = np.isfinite(tc.u)
        assert ok.sum() > 0.95 * W
        np.testing.assert_allclose(BOTTOM - tc.u[ok], truth[ok], atol=1.0)


@pytest.mark.parametrize("missing", ["GR", "SP"])
def test_a_curve_whose_pick_lies_on_nothing_is_not_found(missing):
    x = np.arange(W, dtype=np.float64)
    truth = _row(0.3 + 0.05 * np.sin(x / 20))
    mask = np.zeros((H_IMG, W), bool)
    _draw(mask, truth)
    good, bad = Pick(50.0, float(truth[50])), Pick(50.0, float(_row(0.9)))
    scales = [
        _scale("GR", 1, picks=[bad if missing == "GR" else good]),
        _scale("SP", 1, picks=[bad if missing == "SP" else good]),
    ]
    traced = {t.scale.mnemonic: t for t in _trace({1: mask}, _registration(*scales))}
    assert np.isnan(traced[missing].u).all()
    other = "SP" if missing == "GR" else "GR"
    assert np.isfinite(traced[other].u).sum() > 0.9 * W


def test_two_registered_crossing_curves_keep_their_identity_and_only_agreed_samples_are_kept():
    x = np.arange(W, dtype=np.float64)
    up, down = _row(0.15 + 0.7 * x / W), _row(0.85 - 0.7 * x / W)  # cross in the middle
    mask = np.zeros((H_IMG, W), bool)
    _draw(mask, up)
    _draw(mask, down)
    scales = [_scale("GR", 1, picks=[Pick(30.0, float(up[30])), Pick(210.0, float(up[210]))])]
    scales.append(_scale("SP", 1, picks=[Pick(30.0, float(down[30])), Pick(210.0, float(down[210]))]))
    reg = _registration(*scales)
    masks, probs = {1: mask}, {1: mask.astype(np.float32)}
    traced = trace_registered(masks, probs, reg)
    for tc, truth in zip(traced, (up, down)):
        ok = np.isfinite(tc.u)
        assert ok[:85].all() and ok[165:].all()  # on both sides of the crossing (its shared ink goes to neither)
        apart = ok & (np.abs(up - down) > 3.0)  # where they share ink, its centre is both's
        np.testing.assert_allclose(BOTTOM - tc.u[apart], truth[apart], atol=1.0)
    # The rule of models.traced: a sample is kept only where both tracers place the curve within AGREE of the track.
    for tc, a, b in zip(traced, trace_chains(masks, probs, reg), trace_paths(masks, probs, reg)):
        kept = np.isfinite(tc.u) & np.isfinite(a.u) & np.isfinite(b.u)
        assert kept.any()
        assert np.all(np.abs(a.u[kept] - b.u[kept]) <= AGREE * HEIGHT)
        assert np.all(tc.conf[~np.isfinite(tc.u)] == 0.0)
    # Where they share ink its centre is neither's position: a tracer that takes it gives it a confidence the LAS
    # file writes as NULL even at probability 1.
    shared = np.abs(up - down) <= 2.0
    for b in trace_paths(masks, probs, reg):
        assert np.isfinite(b.u[shared]).any()
        assert np.all(b.conf[shared & np.isfinite(b.u)] < MIN_CONFIDENCE)


def test_a_backup_trace_the_primarys_ink_runs_on_into_is_never_put_on_the_wrong_lap():
    """The primary rises to the top border and is clipped there; its backup trace (same class) starts at the bottom
    border a few columns on, level with where the primary was before the rise. Ink alone joins them on one lap;
    the backup trace's pick (lap 1) tells the chain tracer it is one lap up. A sample is on its true lap or NULL."""
    x = np.arange(W, dtype=np.float64)
    pos = np.interp(x, [0.0, 100.0, 108.0, W - 1.0], [0.3, 0.3, 1.3, 1.2])  # steep past the top, then off scale
    over = pos > 1.0
    rows = np.where(over | (pos > 0.97), np.nan, _row(pos))
    rows = np.where(over & (pos - 1 > 0.03), _row(pos - 1), rows)
    mask = np.zeros((H_IMG, W), bool)
    _draw(mask, rows)
    picks = [Pick(50.0, float(rows[50])), Pick(170.0, float(rows[170]), lap=1)]
    reg = _registration(_scale("GR", 1, "backup", picks=picks))
    masks, probs = {1: mask}, {1: mask.astype(np.float32)}
    (chained,) = trace_chains(masks, probs, reg)
    level = (x < 98) | (x > 112)
    np.testing.assert_allclose(chained.u[level] / HEIGHT, pos[level], atol=1.5 / HEIGHT)  # each part on its pick's lap
    (gr,) = trace_registered(masks, probs, reg)
    ok = np.isfinite(gr.u)
    assert ok[:95].all()
    np.testing.assert_allclose(gr.u[ok & level] / HEIGHT, pos[ok & level], atol=1.5 / HEIGHT)


@pytest.mark.parametrize("picked", [True, False])
def test_a_stretch_off_scale_is_kept_only_with_a_pick_on_its_lap(picked):
    x = np.arange(W, dtype=np.float64)
    pos = 0.3 + 1.4 * x / W  # leaves the top at x ~ 120 and goes on one lap up
    plotted = pos - np.floor(pos)
    rows = _row(plotted)
    rows[(plotted < 0.03) | (plotted > 0.97)] = np.nan  # the ink on the border lines is not the curve's
    mask = np.zeros((H_IMG, W), bool)
    _draw(mask, rows)
    picks = [Pick(40.0, float(rows[40]))] + ([Pick(200.0, float(rows[200]), lap=1)] if picked else [])
    (gr,) = _trace({1: mask}, _registration(_scale("GR", 1, "wrap", picks=picks)))
    ok = np.isfinite(gr.u)
    assert ok[:110].mean() > 0.9
    np.testing.assert_allclose(gr.u[ok] / HEIGHT, pos[ok], atol=1.5 / HEIGHT)
    if picked:
        assert ok[135:].mean() > 0.9
    else:
        assert not ok[135:].any()
        assert np.all(gr.conf[135:] == 0.0)


def test_a_track_with_no_ink_of_its_classes_gives_curves_with_no_samples():
    """A model that finds no curve in a track (or the class of a curve in another one) gives NULL curves."""
    empty = np.zeros((H_IMG, W), bool)
    scales = [_scale("GR", 1, picks=[Pick(60.0, float(_row(0.5)))]), _scale("SP", 2, "wrap")]
    traced = _trace({1: empty, 2: empty}, _registration(*scales))
    assert [t.scale.mnemonic for t in traced] == ["GR", "SP"]
    for t in traced:
        assert np.isnan(t.u).all() and np.all(t.conf == 0.0)


def test_holes_as_long_as_a_dash_space_are_interpolated_and_longer_ones_or_lost_peaks_stay_holes():
    band = Band(np.full(400, 20.0), np.full(400, 220.0))  # 200 rows high: dash spaces up to 12 columns
    x = np.arange(400, dtype=np.float64)
    u = 100.0 + 60.0 * np.sin(2 * np.pi * x / 150) + 40.0 * np.exp(-(((x - 330) / 2.5) ** 2))  # a spike at 330
    holes = u.copy()
    holes[144:156] = np.nan  # a dash space (12 columns)
    holes[200:224] = np.nan  # twice as long: the ink of another curve, or a pen-up
    holes[325:336] = np.nan  # as short as a dash space, but the curve's spike was there (its tracers lost it)
    filled, _ = bridge_holes(holes, np.ones(400), band, clipping=True)
    assert np.isfinite(filled[144:156]).all()
    np.testing.assert_allclose(filled[144:156], u[144:156], atol=0.01 * 200)
    assert np.isnan(filled[200:224]).all()
    assert np.isnan(filled[325:336]).all()
    assert np.isfinite(filled[:200]).all() and np.isfinite(filled[224:325]).all() and np.isfinite(filled[336:]).all()


def test_a_chain_that_went_from_one_curves_ink_to_anothers_between_their_picks_gives_each_its_side():
    """Two chains that each followed one curve, then the other's ink (no meeting between: the curves never shared
    a run), each holding a pick of both: each curve takes the columns on its picks' side, none takes the columns
    between two picks of different curves (where the chain changed curves), and no sample is the other curve's."""
    x = np.arange(W)
    low, high = np.full(W, 10.0), np.full(W, 30.0)  # curve X 10 rows above the bottom border, Y 30
    hop = x >= W // 2

    def chain(before: np.ndarray, after: np.ndarray) -> Curve:
        z = np.zeros(W, np.int64)
        return Curve(np.where(hop, after, before), z, np.ones(W), np.ones(W, np.int64), np.zeros(W, bool), z)

    chains = [chain(low, high), chain(high, low)]
    pick = {h: [Pick(20.0, BOTTOM - h), Pick(W - 20.0, BOTTOM - h)] for h in (10.0, 30.0)}
    scales = (_scale("GR", 1, picks=pick[10.0]), _scale("SP", 1, picks=pick[30.0]))
    found = _assign(chains, scales, _band())
    for k, h in enumerate((10.0, 30.0)):
        u = found[k][0]
        assert np.all(u[:21] == h) and np.all(u[W - 20 :] == h)
        assert np.isnan(u[21 : W - 20]).all()
