"""The curve truth of a raster on disk: the exported true curves round-trip exactly; a label's traced truth is the
run-centre extraction of the label, and a perfect prediction scores perfectly against it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.collate import collate
from datamodules.labels import IGNORE_INDEX, task_spec
from datamodules.synth import render
from datamodules.synth.generate import EVENT_MARGIN
from datamodules.truth import MAX_TRACED, read_truth, trace_label, write_truth
from models.extraction import run_centres
from models.metrics import metrics_from_logits
from tests.helpers.datasets import curve_label
from tests.helpers.samples import one_track_sample, oracle_logits


def test_true_curves_round_trip_exactly(tmp_path):
    sample = render(4, seed=1, task="multiclass", scale=0.1)
    write_truth(tmp_path / "t.npz", sample)
    truth = read_truth(tmp_path / "t.npz")
    for name in ("curve_rows", "curve_classes", "curve_tracks", "curve_scored", "curve_laps"):
        got, want = getattr(truth, name), getattr(sample, name)
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), name
    assert truth.curves == sample.curves


def test_a_file_that_is_not_true_curves_is_refused(tmp_path):
    (tmp_path / "t.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a true-curves file"):
        read_truth(tmp_path / "t.npz")


@pytest.mark.parametrize(("task", "index"), [("binary", 2), ("multiclass", 3)])
def test_every_traced_point_is_a_run_centre_of_the_label(task, index):
    sample = render(index, seed=0, task=task)  # full scale: thin strokes at small scales break into dots
    label = sample.label
    truth = trace_label(label, task_spec(task).curve_classes)
    assert truth.curve_rows.shape[1] == label.shape[1] and 0 < len(truth.curve_classes) <= MAX_TRACED
    for cls in task_spec(task).curve_classes:
        centres = run_centres(torch.from_numpy(label == cls)[None])[0].numpy()  # (H, W), NaN but at run ends
        cols, rows = np.nonzero(np.isfinite(centres.T))
        expected = set(zip(cols.tolist(), centres.T[cols, rows].tolist()))
        mine = truth.curve_classes == cls
        k, x = np.nonzero(np.isfinite(truth.curve_rows) & mine[:, None])
        traced = set(zip(x.tolist(), truth.curve_rows[k, x].astype(np.float64).tolist()))
        assert traced and traced <= expected  # a traced curve point is always a run centre of its class
    # ignored ink breaks the traced curves, yet most columns the generator scores are scored from the label too
    assert truth.curve_scored.sum() > 0.5 * sample.curve_scored.sum()


def test_crossing_curves_of_one_class_split_where_they_meet():
    h, w = 64, 60
    label = np.zeros((h, w), np.uint8)
    x = np.arange(w)
    for rows in (2 + x, 60 - x):  # an X: two steep curves crossing in the middle
        label[rows, x] = 1
        label[rows + 1, x] = 1
    truth = trace_label(label, (1,))
    assert len(truth.curve_classes) == 4  # each curve in two pieces, the short meeting run in none
    for k in range(4):
        cols = np.nonzero(truth.curve_scored[k])[0]
        drawn = np.nonzero(np.isfinite(truth.curve_rows[k]))[0]
        assert cols.min() - drawn.min() >= EVENT_MARGIN and drawn.max() - cols.max() >= EVENT_MARGIN
    assert not truth.curve_scored[:, w // 2 - 2 : w // 2 + 2].any()  # nothing scored where they meet


def test_a_run_touching_ignored_ink_or_the_edge_is_not_scored():
    label = curve_label(16, 40, rows=(6,))
    label[5, 20] = IGNORE_INDEX  # above column 20's run
    truth = trace_label(label, (1,))
    assert truth.curve_scored.shape == (1, 40)
    assert not truth.curve_scored[0, 20] and truth.curve_scored[0, 10]
    edge = trace_label(curve_label(16, 40, rows=(0,)), (1,))
    assert len(edge.curve_classes) == 0  # a curve along the top edge: no run centre is certain


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_a_perfect_prediction_scores_perfectly_against_the_traced_truth(task):
    s = one_track_sample(task)
    truth = trace_label(s.label, task_spec(task).curve_classes)
    assert len(truth.curve_classes) == 2
    batch = collate([truth.sample(s.image, s.label)])
    m = metrics_from_logits(task, oracle_logits(task, batch.labels), batch)
    assert m["val_dice_fg"] == pytest.approx(1.0)
    assert m["val_f1_tol2"] == pytest.approx(1.0)
    assert m["val_curve_mae"] == pytest.approx(0.0, abs=1e-6)
    assert m["val_curve_coverage"] == pytest.approx(1.0)
    assert m["val_r2_300"] == pytest.approx(1.0, abs=1e-4)
    assert m["val_mae_300"] == pytest.approx(0.0, abs=1e-4)
