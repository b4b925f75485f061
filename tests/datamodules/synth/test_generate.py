"""The generator's contract (docs/generator.md, 'Determinism'): determinism, sizes, the Sample fields, the same scene at
every scale. Small scales and few instances, so the file runs in seconds."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from datamodules import synth
from datamodules.labels import TASKS
from datamodules.synth import GENERATOR_VERSION, CurveInfo, render, shape
from datamodules.synth.styles import SECONDARY

ARRAYS = ("image", "label", "curve_rows", "curve_scored", "curve_laps", "curve_classes", "curve_tracks")
KINDS = {"GR", "SP", "CALI", "RES_DEEP", "RES_MED", "RES_SHALLOW", "NPHI", "RHOB", "DT"}


def _digest(s: synth.Sample) -> str:
    h = hashlib.sha256()
    for f in ARRAYS:
        h.update(getattr(s, f).tobytes())
    h.update(repr(s.curves).encode())
    return h.hexdigest()


def test_version_is_2():
    assert GENERATOR_VERSION == 2


@pytest.mark.parametrize("task", TASKS)
def test_render_is_byte_identical_on_repeat(task):
    a, b = render(7, seed=1, task=task, scale=0.125), render(7, seed=1, task=task, scale=0.125)
    for f in ARRAYS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes(), f
    assert a.curves == b.curves


def test_identical_in_a_fresh_process():
    code = (
        "import hashlib; from datamodules.synth import render; s = render(3, seed=9, task='binary', scale=0.1);"
        "h = hashlib.sha256(); [h.update(getattr(s, f).tobytes()) for f in " + repr(ARRAYS) + "];"
        "h.update(repr(s.curves).encode()); print(h.hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == _digest(render(3, seed=9, task="binary", scale=0.1))


@pytest.mark.parametrize("scale", [0.05, 0.1, 0.2])
@pytest.mark.parametrize("task", TASKS)
def test_shape_matches_render(task, scale):
    for i in range(4):
        assert render(i, seed=5, task=task, scale=scale).image.shape == shape(i, seed=5, task=task, scale=scale)


def test_different_indices_differ():
    digests = {_digest(render(i, seed=0, task="binary", scale=0.1)) for i in range(4)}
    assert len(digests) == 4


def test_full_scale_size_ranges_via_shape():
    sizes = np.array([shape(i, seed=0, task=t) for t in TASKS for i in range(300)])
    assert sizes[:, 0].min() >= 480 and sizes[:, 0].max() <= 640
    assert sizes[:, 1].min() >= 3200 and sizes[:, 1].max() <= 12800
    assert sizes[:, 1].max() - sizes[:, 1].min() > 6000  # actually spread over the range


def test_bad_task_and_scale_rejected():
    with pytest.raises(ValueError, match="binary, multiclass"):
        render(0, seed=0, task="instance", scale=0.1)
    with pytest.raises(ValueError, match="scale"):
        render(0, seed=0, task="binary", scale=0.0)


@pytest.mark.parametrize("task", TASKS)
def test_sample_fields(task):
    for i in range(6):
        s = render(i, seed=2, task=task, scale=0.1)
        h, w = s.image.shape
        k = len(s.curves)
        assert s.image.dtype == np.uint8 and s.label.dtype == np.uint8 and s.label.shape == (h, w)
        assert s.curve_rows.dtype == np.float32 and s.curve_rows.shape == (k, w)
        assert s.curve_scored.dtype == bool and s.curve_scored.shape == (k, w)
        assert s.curve_laps.dtype == np.int8 and s.curve_laps.shape == (k, w)
        assert s.curve_classes.dtype == np.int64 and s.curve_classes.shape == (k,)
        assert s.curve_tracks.dtype == np.float32 and s.curve_tracks.shape == (k, 2)
        assert not (s.curve_scored & ~np.isfinite(s.curve_rows)).any()
        assert (s.curve_laps[~np.isfinite(s.curve_rows)] == 0).all()
        for c in s.curves:
            assert c.kind in KINDS and c.scale in ("lin", "log") and c.offscale in ("clip", "wrap", "backup")
            assert c.style in ("solid", *SECONDARY) and c.left != c.right
            assert c.scale == "lin" or 0 < c.left < c.right


@pytest.mark.parametrize("task", TASKS)
def test_two_to_five_curves_and_classes_follow_the_style_rule(task):
    counts, backups = set(), 0
    for i in range(16):
        s = render(i, seed=4, task=task, scale=0.05)
        k = len(s.curves)
        counts.add(k)
        assert 2 <= k <= 5
        classes = s.curve_classes.tolist()
        if task == "binary":
            assert set(classes) == {1}
        else:
            assert set(classes) == {1, 2}  # at least one of each
            assert all((c.style == "solid") == (cls == 1) for c, cls in zip(s.curves, classes, strict=True))
        for j, c in enumerate(s.curves):
            if c.backup_of >= 0:  # a dashed or dotted second trace of its primary on the shifted scale
                backups += 1
                p = s.curves[c.backup_of]
                assert p.backup_of < 0 and p.offscale == "backup" and p.kind == c.kind
                assert c.style in ("long", "short", "dot") and (task == "binary" or classes[j] == 2)
                assert c.left == pytest.approx(p.right) or c.right == pytest.approx(p.left)
    assert len(counts) >= 3  # the count varies


def test_some_logs_carry_backup_traces():
    found = sum(c.backup_of >= 0 for i in range(60) for c in render(i, seed=6, task="binary", scale=0.03).curves)
    assert found >= 1


def test_scaled_render_is_the_same_scene():
    """Scale s draws the full-scale scene smaller: same curves, same labels per curve, same geometry."""
    for task, i in (("binary", 1), ("multiclass", 2)):
        full, small = render(i, seed=0, task=task), render(i, seed=0, task=task, scale=0.1)
        assert small.curves == full.curves
        assert small.curve_classes.tolist() == full.curve_classes.tolist()
        (h, w), (hf, wf) = small.image.shape, full.image.shape
        sx, sy = w / wf, h / hf
        np.testing.assert_allclose(small.curve_tracks, (full.curve_tracks + 0.5) * sy - 0.5, atol=1e-3)
        near = np.clip(np.rint((np.arange(w) + 0.5) / sx - 0.5).astype(int), 0, wf - 1)
        expect = (full.curve_rows[:, near] + 0.5) * sy - 0.5  # (K, w)
        both = np.isfinite(expect) & np.isfinite(small.curve_rows)
        assert both.mean() > 0.5
        err = np.abs(small.curve_rows - expect)[both & (small.curve_laps == full.curve_laps[:, near])]
        assert np.median(err) < 0.3 and np.percentile(err, 95) < 1.5


def test_curve_info_turns_positions_back_into_values():
    gr = CurveInfo("GR", "lin", 0.0, 150.0, "wrap", -1, "solid")
    assert gr.value(0.5) == pytest.approx(75.0)
    assert gr.value(0.5, lap=1) == pytest.approx(225.0)  # base + lap * (right - left)
    res = CurveInfo("RES_DEEP", "log", 0.2, 2000.0, "clip", -1, "solid")
    assert res.value(0.25) == pytest.approx(2.0)
    assert res.value(0.25, lap=1) == pytest.approx(2.0 * 10_000)  # base * (right / left) ** lap
    nphi = CurveInfo("NPHI", "lin", 0.45, -0.15, "clip", -1, "dot")
    v = np.array([0.45, 0.3, 0.0, -0.15])
    np.testing.assert_allclose(nphi.value(nphi.position(v)), v, atol=1e-12)
    np.testing.assert_allclose(res.position(res.value(np.array([0.1, 0.9]))), [0.1, 0.9])
