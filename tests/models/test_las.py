"""Traced curves to LAS 2.0: the depth grid, resampling, NULLs, every file through a lasio round trip and the
conformity rules, and a synthetic raster's true labels through the whole path back to their own values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.registration import CurveScale, Registration, TrackScale
from datamodules.synth import render_registered
from datamodules.synth.register import mnemonic
from models.las import NULL, build_las, depth_grid, digitise, las_overlay, las_text, step_decimals, write_las
from models.modes import mode_for
from models.tracing import TracedCurve
from tests.helpers.las import assert_round_trip, check_las

W, H = 101, 40


def _registration(depths=(1000.0, 1050.0), unit="ft", scale="linear", left=0.0, right=150.0) -> Registration:
    curve = CurveScale(1, "GR", "GAPI", left, right, scale, "clip", 1)
    return Registration(
        width=W,
        height=H,
        depth_unit=unit,
        depth_points=np.array([[0.0, depths[0]], [W - 1.0, depths[1]]]),
        tracks=(TrackScale(5.0, 35.0, (curve,)),),
    )


def _traced(reg: Registration, u: np.ndarray, conf: float = 1.0) -> TracedCurve:
    t, scale = reg.curves()[0]
    return TracedCurve(t, scale, u, np.where(np.isfinite(u), conf, 0.0), reg.tracks[0].height)


@pytest.mark.parametrize(("step", "decimals"), [(0.5, 1), (0.25, 2), (1.0, 0), (0.1524, 4)])
def test_the_depth_grid_is_multiples_of_the_step_inside_the_image(step, decimals):
    assert step_decimals(step) == decimals
    reg = _registration((1000.3, 1049.9))
    d = depth_grid(reg, step)
    assert d[0] >= 1000.3 and d[-1] <= 1049.9
    assert d[0] - step < 1000.3 and d[-1] + step > 1049.9  # nothing left out
    np.testing.assert_allclose(d / step, np.round(d / step), atol=1e-9)
    np.testing.assert_allclose(np.diff(d), step, atol=1e-9)


def test_depth_decreasing_with_the_column_still_writes_an_increasing_index(tmp_path):
    reg = _registration((1050.0, 1000.0))
    x = np.arange(W, dtype=np.float64)
    dig = build_las(reg, [_traced(reg, 10.0 + 0.1 * x)], step=0.5)
    path = tmp_path / "up.las"
    write_las(dig.las, 0.5, path)
    las = check_las(path)
    assert las.index[0] == 1000.0 and las.index[-1] == 1050.0
    # depth 1000 is the last column: u = 10 + 0.1 * 100 = 20 rows of 30: 100 GAPI
    assert las["GR"][0] == pytest.approx(100.0, rel=1e-5)
    assert_round_trip(dig.las, path)


def test_values_are_interpolated_in_track_position_and_null_where_absent_or_unsure(tmp_path):
    reg = _registration()
    x = np.arange(W, dtype=np.float64)
    u = 3.0 + 0.2 * x  # rows above the bottom border: GR = 150 * u / 30
    u[40:60] = np.nan  # a gap
    dig = build_las(reg, [_traced(reg, u)], step=0.5)
    depths = np.asarray(dig.las.index)
    cols = (depths - 1000.0) * 2  # 0.5 ft per column
    gr = np.asarray(dig.las["GR"])
    gap = (cols > 39) & (cols < 60)
    assert np.isnan(gr[gap]).all()
    np.testing.assert_allclose(gr[~gap], 150.0 * (3.0 + 0.2 * cols[~gap]) / 30.0, rtol=1e-9)
    assert dig.found == 1 and dig.null == int(gap.sum()) and dig.samples == depths.size
    unsure = build_las(reg, [_traced(reg, u, conf=0.3)], step=0.5, min_confidence=0.5)
    assert np.isnan(np.asarray(unsure.las["GR"])).all() and unsure.found == 0
    path = tmp_path / "gr.las"
    write_las(dig.las, 0.5, path)
    check_las(path)
    assert_round_trip(dig.las, path)
    assert f"{NULL}" in las_text(dig.las, 0.5)


def test_a_log_track_interpolates_log_linearly(tmp_path):
    reg = _registration(scale="log", left=0.2, right=2000.0)  # 4 decades over 30 rows
    x = np.arange(W, dtype=np.float64)
    dig = build_las(reg, [_traced(reg, 0.3 * x)], step=0.25)
    depths = np.asarray(dig.las.index)
    pos = 0.3 * (depths - 1000.0) * 2 / 30.0
    np.testing.assert_allclose(np.asarray(dig.las["GR"]), 0.2 * 10.0 ** (4 * pos), rtol=1e-9)
    path = tmp_path / "res.las"
    write_las(dig.las, 0.25, path)
    check_las(path)
    assert_round_trip(dig.las, path)


def test_metres_and_the_header_fields(tmp_path):
    reg = _registration(unit="m")
    reg = Registration(reg.width, reg.height, "m", reg.depth_points, reg.tracks, well={"WELL": "X-1", "UWI": "42"})
    dig = build_las(reg, [_traced(reg, np.full(W, 15.0))], step=0.1)
    path = tmp_path / "m.las"
    write_las(dig.las, 0.1, path)
    las = check_las(path)
    assert las.curves[0].unit == "M" and las.well["WELL"].value == "X-1" and las.well["UWI"].value == "42"


def test_a_step_must_be_positive():
    reg = _registration()
    with pytest.raises(ValueError, match="step"):
        build_las(reg, [], step=0.0)


@pytest.mark.parametrize(("task", "index"), [("binary", 1), ("multiclass", 7)])
def test_true_labels_come_back_as_their_own_values(task, index, tmp_path):
    """A synthetic raster's label, as confident logits, through tracing and LAS: the curves it registers come
    back near their true values where the truth is scored."""
    sample, reg = render_registered(index, seed=0, task=task, scale=0.15)
    mode = mode_for(task)
    label = np.where(sample.label == 255, 0, sample.label)
    t = torch.from_numpy(label.astype(np.int64))
    if mode.is_binary:
        logits = (20.0 * (2.0 * t.float() - 1.0))[None, None]
    else:
        logits = (20.0 * (2.0 * torch.nn.functional.one_hot(t, mode.num_classes).permute(2, 0, 1).float() - 1.0))[None]
    dig = digitise(mode, logits, reg, step=0.5)
    path = tmp_path / f"{task}.las"
    write_las(dig.las, 0.5, path)
    check_las(path)
    assert_round_trip(dig.las, path)
    assert dig.found >= 1
    for k, info in enumerate(sample.curves):
        if info.backup_of >= 0:
            continue
        traced = next((c for c in dig.curves if c.scale.mnemonic == mnemonic(info.kind)), None)
        if traced is None or len({c.cls for c in reg.tracks[traced.track].curves}) < len(
            reg.tracks[traced.track].curves
        ):
            continue  # a curve sharing its class in its track: tests/models/test_tracing.py has those
        top, bottom = reg.band(traced.track)
        truth = (bottom - sample.curve_rows[k]) / (bottom - top) + sample.curve_laps[k]
        both = sample.curve_scored[k] & np.isfinite(traced.u)
        if both.sum() < 20:
            continue
        err = np.abs(traced.u[both] / traced.height - truth[both])
        assert np.median(err) < 0.03, (info.kind, float(np.median(err)))
    image = sample.image
    over = las_overlay(image, reg, dig.las)
    assert over.shape == (*image.shape, 3) and over.dtype == np.uint8
