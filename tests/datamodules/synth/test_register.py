"""The generator's registration is exact: through it, every drawn curve row gives back the track position the
generator plotted there, its picks lie on their curves, and it reads back through the checked parser."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datamodules.labels import TASKS
from datamodules.registration import parse
from datamodules.synth import render_drawn, render_registered
from datamodules.synth.raster import sample_pieces
from datamodules.synth.register import mnemonic, registration_of


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("index", [0, 1, 7])
def test_the_registration_maps_each_curve_back_to_what_was_plotted(task, index):
    drawn = render_drawn(index, seed=0, task=task, scale=0.1)
    reg = registration_of(drawn)
    s = drawn.sample
    assert (reg.width, reg.height) == (s.image.shape[1], s.image.shape[0])
    for k, trace in enumerate(drawn.scene.traces):
        top, bottom = reg.band(trace.track)
        pos = (bottom - s.curve_rows[k]) / (bottom - top)  # through the registration
        plotted, _ = sample_pieces(trace.pos, trace.seg, drawn.frame.centres())  # what the generator drew
        m = s.curve_scored[k]
        np.testing.assert_allclose(pos[m], plotted[m], atol=1e-3)
    names = [c.mnemonic for _, c in reg.curves()]
    primaries = [c for c in s.curves if c.backup_of < 0]
    assert names == [mnemonic(c.kind) for c in sorted(primaries, key=lambda c: _track_of(drawn, c))]


def _track_of(drawn, info) -> int:
    return next(tr.track for tr in drawn.scene.traces if tr.info.kind == info.kind and tr.info.backup_of < 0)


@pytest.mark.parametrize("task", TASKS)
def test_depth_increases_with_the_page_and_picks_lie_on_their_curves(task):
    sample, reg = render_registered(3, seed=0, task=task, scale=0.1)
    depth = reg.depth_at(np.arange(reg.width, dtype=np.float64))
    assert np.all(np.diff(depth) > 0)
    assert reg.depth_unit in ("ft", "m") and reg.well["WELL"] == f"SYNTHETIC {task.upper()} 3"
    kinds = {mnemonic(c.kind): k for k, c in enumerate(sample.curves) if c.backup_of < 0}
    for _, scale in reg.curves():
        k = kinds[scale.mnemonic]
        backups = [j for j, c in enumerate(sample.curves) if c.backup_of == k]
        for p in scale.picks:
            c = int(p.column)
            on = [j for j in [k, *backups] if sample.curve_rows[j, c] == pytest.approx(p.row, abs=1e-3)]
            assert on, f"a pick of {scale.mnemonic} at column {c} lies on none of its traces"
            j = on[0]
            # its lap is where the trace's value lies on the curve's own scale
            value = sample.curves[j].value(0.5, int(sample.curve_laps[j, c]))
            assert p.lap == round(float(scale.position(np.array([value]))[0]) - 0.5)


def test_a_backup_trace_gets_picks_of_its_own_one_lap_off():
    for index in range(40):
        sample, reg = render_registered(index, seed=0, task="binary", scale=0.1)
        for _, scale in reg.curves():
            k = next(i for i, c in enumerate(sample.curves) if c.backup_of < 0 and mnemonic(c.kind) == scale.mnemonic)
            backups = [j for j, c in enumerate(sample.curves) if c.backup_of == k]
            if scale.offscale == "backup" and any(np.isfinite(sample.curve_rows[j]).sum() > 20 for j in backups):
                assert {p.lap for p in scale.picks} & {-1, 1}, f"raster {index}: no pick on {scale.mnemonic}'s backup"
                return
    pytest.fail("no binary raster among the first 40 has a backup trace")
    assert parse(json.loads(json.dumps(reg.to_json())), "generated").to_json() == reg.to_json()


def test_the_generator_output_is_unchanged_by_registering():
    a = render_drawn(5, seed=0, task="multiclass", scale=0.1).sample
    b, _ = render_registered(5, seed=0, task="multiclass", scale=0.1)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)


def test_each_side_of_a_crossing_gets_a_pick_even_where_a_steep_curve_crosses_between_columns():
    """A curve crossing another of its class splits its stretches: between two crossings (a change of side from one
    column to the next, which a steep curve makes without ever being near the other in one column), a column where
    it is inked, clear of the borders and of the other curves of its class means a pick in that stretch, so that a
    tracer that swapped the two at the crossing is put right."""
    checked = sum(_stretches_between_crossings_have_picks(index) for index in range(8))
    assert checked > 20


def _stretches_between_crossings_have_picks(index: int) -> int:
    drawn = render_drawn(index, seed=0, task="binary", scale=0.25)
    sample, reg = drawn.sample, registration_of(drawn)
    rows = sample.curve_rows
    checked = 0
    for t, track in enumerate(reg.tracks):
        top, bottom = drawn.borders[t]
        height = float(np.median(bottom - top))
        ks = [k for k, tr in enumerate(drawn.scene.traces) if tr.track == t and sample.curves[k].backup_of < 0]
        for k in ks:
            others = [j for j in ks if j != k and sample.curve_classes[j] == sample.curve_classes[k]]
            if not others or np.any(sample.curve_laps[k] != 0):
                continue
            picks = np.array([round(p.column) for s in track.curves if s.mnemonic == mnemonic(sample.curves[k].kind)
                              for p in s.picks if p.lap == 0])  # fmt: skip
            with np.errstate(invalid="ignore"):
                clear = sample.curve_scored[k] & (rows[k] - top > 5) & (bottom - rows[k] > 5)
                segment = np.zeros(rows.shape[1], np.int64)
                for j in others:
                    d = rows[j] - rows[k]
                    clear &= np.abs(d) > max(5.0, 0.07 * height)
                    turned = np.isfinite(d[:-1]) & np.isfinite(d[1:]) & (np.sign(d[:-1]) != np.sign(d[1:]))
                    clear[:-1] &= ~turned  # the columns either side of a crossing are near it
                    clear[1:] &= ~turned
                    segment = segment * 4096 + np.concatenate([[0], np.cumsum(turned)])
            for seg in np.unique(segment[clear]):
                cols = np.flatnonzero(segment == seg)
                assert np.any((picks >= cols[0]) & (picks <= cols[-1])), (
                    f"raster {index}: {sample.curves[k].kind} has no pick between columns {cols[0]} and {cols[-1]}"
                )
                checked += 1
    return checked
