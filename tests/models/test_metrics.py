"""Metric contracts: ground truth scores perfectly, a 2 px shift breaks strict IoU but not tolerant F1,
padding never counts, and every key is a name from ``models.metric_names``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.collate import collate
from datamodules.labels import IGNORE_INDEX
from datamodules.synth import Sample
from models.metric_names import METRICS
from models.metrics import (
    CURVE_COVERAGE,
    CURVE_MAE,
    DICE_FG,
    F1_TOL2,
    IOU_FG,
    SegmentationMetrics,
    metrics_from_logits,
)
from models.modes import mode_for

TRACK = (8.0, 56.0)  # (top, bottom) row of the one track; height 48 px


def make_sample(task: str, h: int = 64, w: int = 256, seed: int = 0, shift: int = 0) -> Sample:
    """A hand-built raster: two smooth 2-px-thick curves inside one track, with known centre rows.

    Each curve covers rows r0(x) and r0(x) + 1, so its true centreline is r0(x) + 0.5. The label is moved
    down by ``shift`` rows (the side channel is not), and a small ignored blotch sits in the top corner.
    """
    rng = np.random.default_rng(seed)
    x = np.arange(w)
    bases = (h * 5 // 16, h * 19 // 32)  # rows 20 and 38 at h = 64; binary: both curves class 1
    label = np.zeros((h, w), dtype=np.uint8)
    rows, classes = [], []
    for k, base in enumerate(bases):
        phase = rng.uniform(0, 2 * np.pi)
        r0 = np.round(base + 4 * np.sin(2 * np.pi * x / w + phase)).astype(int)  # (W,)
        cls = 1 if task == "binary" else k + 1
        label[r0 + shift, x] = cls
        label[r0 + 1 + shift, x] = cls
        rows.append(r0 + 0.5)
        classes.append(cls)
    label[:3, :5] = IGNORE_INDEX
    image = np.where(label == 0, 255, 40).astype(np.uint8)
    return Sample(
        image=image,
        label=label,
        curve_rows=np.stack(rows).astype(np.float32),
        curve_classes=np.array(classes, dtype=np.int64),
        curve_tracks=np.array([TRACK] * len(bases), dtype=np.float32),
    )


def oracle_logits(task: str, labels: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """Large one-hot logits of the labels (255 read as background). (B, H, W) -> (B, C, H, W)."""
    labels = torch.where(labels == IGNORE_INDEX, 0, labels)
    if mode_for(task).is_binary:
        return (scale * (2.0 * labels.float() - 1.0)).unsqueeze(1)
    onehot = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    return scale * (2.0 * onehot - 1.0)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_ground_truth_scores_perfectly(task):
    batch = collate([make_sample(task)])
    m = metrics_from_logits(task, oracle_logits(task, batch.labels), batch)
    for c in range(mode_for(task).num_classes):
        assert m[f"val_iou_c{c}"] == pytest.approx(1.0)
        assert m[f"val_dice_c{c}"] == pytest.approx(1.0)
    assert m[IOU_FG] == pytest.approx(1.0)
    assert m[DICE_FG] == pytest.approx(1.0)
    assert m[F1_TOL2] == pytest.approx(1.0)
    assert m[CURVE_MAE] <= 0.01
    assert m[CURVE_COVERAGE] == pytest.approx(1.0)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_two_pixel_shift_breaks_iou_not_tolerant_f1(task):
    truth = collate([make_sample(task)])
    shifted = collate([make_sample(task, shift=2)])
    m = metrics_from_logits(task, oracle_logits(task, shifted.labels), truth)
    assert m[IOU_FG] < 0.6
    assert m[F1_TOL2] >= 0.95
    assert m[CURVE_MAE] == pytest.approx(2.0 / (TRACK[1] - TRACK[0]), abs=1e-3)  # 2 px / 48 px


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_keys_are_declared_names(task):
    batch = collate([make_sample(task)])
    m = metrics_from_logits(task, oracle_logits(task, batch.labels), batch)
    assert set(m) <= set(METRICS)
    assert {IOU_FG, DICE_FG, F1_TOL2, CURVE_MAE, CURVE_COVERAGE} <= set(m)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_padding_never_counts(task):
    sample = make_sample(task, h=50, w=200, seed=3)
    wide = make_sample(task, h=64, w=320, seed=4)
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


def test_missing_prediction_is_interpolated_and_uncovered():
    task = "multiclass"
    batch = collate([make_sample(task)])
    logits = oracle_logits(task, batch.labels)
    logits[..., 100:140] = 0.0  # no class is confident in 40 of 256 columns
    logits[:, 0, :, 100:140] = 1.0  # background wins argmax; curve probability < 0.5
    m = metrics_from_logits(task, logits, batch)
    assert m[CURVE_COVERAGE] == pytest.approx(1 - 40 / 256)
    assert m[CURVE_MAE] < 0.05


def test_accumulates_over_batches_and_resets():
    task = "binary"
    metric = SegmentationMetrics(task)
    good = collate([make_sample(task)])
    bad = collate([make_sample(task, seed=1)])
    metric.update(oracle_logits(task, good.labels), good)
    metric.update(-20 * torch.ones(1, 1, 64, 256), bad)  # predicts nothing
    out = metric.compute()
    assert 0.4 < float(out[IOU_FG]) < 0.6
    assert float(out[CURVE_COVERAGE]) == pytest.approx(0.5)
    assert float(out[CURVE_MAE]) == pytest.approx(0.5 * (0.0 + 0.5), abs=0.01)
    metric.reset()
    assert int(metric.n_curves) == 0
