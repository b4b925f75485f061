"""Metric contracts: ground truth scores perfectly, degenerate predictions lose on every curve metric, a 2 px
shift breaks strict IoU but not tolerant F1 or R^2, padding never counts, and every key is a name from
``models.metric_names``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.collate import collate
from datamodules.labels import IGNORE_INDEX
from datamodules.synth import Sample, render
from models.metric_names import METRICS
from models.metrics import (
    CAP,
    CURVE_COVERAGE,
    CURVE_MAE,
    DICE_FG,
    F1_TOL2,
    IOU_FG,
    MAE_300,
    MIOU_ALL,
    R2_300,
    SegmentationMetrics,
    metrics_from_logits,
)
from models.modes import mode_for
from tests.helpers.samples import TRACK, one_track_sample, oracle_logits


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_ground_truth_scores_perfectly(task):
    batch = collate([one_track_sample(task)])
    m = metrics_from_logits(task, oracle_logits(task, batch.labels), batch)
    for c in range(mode_for(task).num_classes):
        assert m[f"val_iou_c{c}"] == pytest.approx(1.0)
        assert m[f"val_dice_c{c}"] == pytest.approx(1.0)
    assert m[IOU_FG] == m[DICE_FG] == m[MIOU_ALL] == pytest.approx(1.0)
    assert m[F1_TOL2] == pytest.approx(1.0)
    assert m[CURVE_MAE] == 0.0
    assert m[CURVE_COVERAGE] == 1.0
    assert m[R2_300] == pytest.approx(1.0, abs=1e-6)
    assert m[MAE_300] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_ground_truth_of_rendered_logs_scores_perfectly(task):
    """On the generator's own rasters: every scored column is reached, the chamfer is 0, R^2 at 300 points
    is the ceiling of extracting run centres from a pixel mask."""
    batch = collate([render(i, seed=5, task=task, scale=0.25) for i in range(3)])
    m = metrics_from_logits(task, oracle_logits(task, batch.labels), batch)
    assert m[CURVE_COVERAGE] == 1.0
    assert m[CURVE_MAE] == 0.0
    assert m[R2_300] >= 0.99  # the ceiling (bench/ceiling.py measures it on 200 rasters per task)
    assert m[MAE_300] <= 0.02


def _stripes(shape: tuple[int, int, int], cls: int, every: int = 3) -> torch.Tensor:
    label = torch.zeros(shape, dtype=torch.long)
    label[:, ::every] = cls
    return label


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_degenerate_predictions_lose_on_every_curve_metric(task):
    batch = collate([one_track_sample(task)])
    truth = batch.labels.clone()
    perfect = metrics_from_logits(task, oracle_logits(task, truth), batch)
    last = mode_for(task).curve_classes[-1]
    degenerate = {
        "all background": torch.zeros_like(truth),
        "all curve": torch.full_like(truth, last),
        "stripes": _stripes(truth.shape, last),
        "shift 1": torch.roll(truth, 1, dims=1),
        "shift 3": torch.roll(truth, 3, dims=1),
    }
    for name, label in degenerate.items():
        m = metrics_from_logits(task, oracle_logits(task, label), batch)
        assert m[CURVE_MAE] > perfect[CURVE_MAE], name
        assert m[R2_300] < perfect[R2_300], name
        assert m[MAE_300] > perfect[MAE_300], name
        assert m[CURVE_COVERAGE] <= perfect[CURVE_COVERAGE], name
        assert m[DICE_FG] < perfect[DICE_FG], name


def test_stripes_lose_on_the_precision_side():
    """The issue's case: stripes every 3 rows reach every column (coverage 1), yet score far worse."""
    task = "binary"
    batch = collate([one_track_sample(task)])
    stripes = metrics_from_logits(task, oracle_logits(task, _stripes(batch.labels.shape, 1)), batch)
    assert stripes[CURVE_COVERAGE] == 1.0
    assert stripes[CURVE_MAE] > 0.5 * CAP  # most of its ink is far from any curve


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_adding_false_pixels_never_pays(task):
    """Pixels away from every curve raise the chamfer, whatever the prediction they are added to."""
    batch = collate([one_track_sample(task)])
    truth = torch.where(batch.labels == 255, 0, batch.labels)
    rng = np.random.default_rng(0)
    far = torch.zeros_like(truth, dtype=torch.bool)
    far[0, rng.integers(0, 10, 40), rng.integers(0, 256, 40)] = True  # rows 0-9: far above both curves
    cls = mode_for(task).curve_classes[0]
    for base in (truth, torch.roll(truth, 2, dims=1), torch.where(torch.arange(256) < 128, truth, 0)):
        before = metrics_from_logits(task, oracle_logits(task, base), batch)[CURVE_MAE]
        after = metrics_from_logits(task, oracle_logits(task, torch.where(far, cls, base)), batch)[CURVE_MAE]
        assert after > before


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_two_pixel_shift_breaks_iou_not_tolerant_f1(task):
    truth = collate([one_track_sample(task)])
    shifted = collate([one_track_sample(task, shift=2)])
    m = metrics_from_logits(task, oracle_logits(task, shifted.labels), truth)
    assert m[IOU_FG] < 0.6
    assert m[F1_TOL2] >= 0.95
    assert 0 < m[CURVE_MAE] < 2.0 / (TRACK[1] - TRACK[0])


def _log_like(shift: int = 0) -> Sample:
    """One 2-px curve that swings over most of a 48 px track, as a log does (rows 12..52 of 64)."""
    h, w = 64, 600
    x = np.arange(w)
    r0 = np.round(31.5 + 20.5 * np.sin(2 * np.pi * x / 300)).astype(int)
    label = np.zeros((h, w), np.uint8)
    label[r0 + shift, x] = label[r0 + 1 + shift, x] = 1
    return Sample(
        image=np.where(label == 0, 255, 40).astype(np.uint8),
        label=label,
        curve_rows=(r0 + 0.5)[None].astype(np.float32),
        curve_classes=np.array([1]),
        curve_tracks=np.array([[8.0, 56.0]], np.float32),
    )


def test_r2_at_300_points_of_a_two_pixel_shift_on_a_48_px_track():
    truth = collate([_log_like()])
    assert metrics_from_logits("binary", oracle_logits("binary", truth.labels), truth)[R2_300] == pytest.approx(1.0)
    shifted = collate([_log_like(shift=2)])
    m = metrics_from_logits("binary", oracle_logits("binary", shifted.labels), truth)
    assert 0.98 <= m[R2_300] < 1.0  # R^2 = 1 - shift^2 / variance of the curve (~ 1 - 4 / 210)
    assert m[MAE_300] == pytest.approx(2.0 / 41.0, rel=0.05)  # the shift over the curve's 41 px range


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_keys_are_declared_names(task):
    batch = collate([one_track_sample(task)])
    m = metrics_from_logits(task, oracle_logits(task, batch.labels), batch)
    assert set(m) <= set(METRICS)
    assert {IOU_FG, DICE_FG, MIOU_ALL, F1_TOL2, CURVE_MAE, CURVE_COVERAGE, R2_300, MAE_300} <= set(m)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_padding_never_counts(task):
    sample = one_track_sample(task, h=50, w=200, seed=3)
    wide = one_track_sample(task, h=64, w=320, seed=4)
    alone = collate([sample])  # padded to 64 x 224
    padded = collate([sample, wide])  # padded to 64 x 320
    torch.manual_seed(0)
    fixed = torch.randn(1, mode_for(task).out_channels, 64, 320) * 3
    fixed[..., :, :200] += oracle_logits(task, padded.labels[:1])[..., :, :200] * 0.2
    junk = torch.randn_like(fixed) * 10  # arbitrary values where the label is padding
    logits = torch.where(padded.labels[:1].unsqueeze(1) == IGNORE_INDEX, junk, fixed)
    one = type(padded)(**{f: getattr(padded, f)[:1] for f in padded.__dataclass_fields__})
    a = metrics_from_logits(task, fixed[..., :224], alone)
    b = metrics_from_logits(task, logits, one)
    assert a == pytest.approx(b, abs=1e-6)


def test_missing_prediction_lowers_coverage_and_counts_as_the_cap():
    task = "multiclass"
    batch = collate([one_track_sample(task)])
    labels = torch.where(batch.labels == 255, 0, batch.labels)
    labels[..., 100:140] = 0  # nothing predicted in 40 of 256 columns
    m = metrics_from_logits(task, oracle_logits(task, labels), batch)
    assert m[CURVE_COVERAGE] == pytest.approx(1 - 40 / 256)
    assert m[CURVE_MAE] == pytest.approx(0.5 * CAP * 40 / 256, rel=1e-5)  # recall side only
    assert m[R2_300] > 0.99  # the gap is interpolated for the 300-point protocol


def test_accumulates_over_batches_and_resets():
    task = "binary"
    metric = SegmentationMetrics(task)
    good = collate([one_track_sample(task)])
    bad = collate([one_track_sample(task, seed=1)])
    metric.update(oracle_logits(task, good.labels), good)
    metric.update(-20 * torch.ones(1, 1, 64, 256), bad)  # predicts nothing
    out = metric.compute()
    assert 0.4 < float(out[IOU_FG]) < 0.6
    assert float(out[CURVE_COVERAGE]) == pytest.approx(0.5)
    assert float(out[CURVE_MAE]) == pytest.approx(0.5 * (0.0 + CAP) / 2, rel=1e-5)
    assert float(out[R2_300]) == pytest.approx(0.5)  # a missed curve scores R^2 = 0
    metric.reset()
    assert int(metric.n_curves) == 0
