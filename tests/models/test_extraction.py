"""The one curve extraction: run centres per column, weighted by probability, from either decision rule."""

from __future__ import annotations

import pytest
import torch

from models.extraction import candidates_table, class_candidates, run_centres
from models.modes import mode_for


def test_run_centres_at_each_runs_last_row():
    mask = torch.zeros(1, 10, 3, dtype=torch.bool)
    mask[0, 2:5, 0] = True  # rows 2..4 -> centre 3
    mask[0, 7, 0] = True  # a one-pixel run -> 7
    mask[0, :, 1] = True  # the whole column -> 4.5
    centres = run_centres(mask)[0]
    assert centres[4, 0] == 3.0 and centres[7, 0] == 7.0 and centres[9, 1] == 4.5
    assert int(torch.isfinite(centres).sum()) == 3  # nothing in column 2, one value per run
    weight = torch.ones(1, 10, 3)
    weight[0, 4, 0] = 3.0
    assert run_centres(mask, weight)[0, 4, 0] == pytest.approx((2 + 3 + 3 * 4) / 5)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_candidates_follow_the_decision_rule_and_list_per_column(task):
    mode = mode_for(task)
    logits = torch.full((1, mode.out_channels, 16, 4), -5.0)
    last = mode.curve_classes[-1]
    if mode.is_binary:
        logits[0, 0, 5:8, :2] = 5.0  # curve at rows 5..7 in columns 0 and 1
    else:
        logits[0, 0] = 5.0
        logits[0, last, 5:8, :2] = 10.0
    centres = class_candidates(mode, logits)  # (1, Kc, H, W)
    assert centres.shape == (1, len(mode.curve_classes), 16, 4)
    table = candidates_table(centres[0], mode.curve_classes)
    assert [(c, k) for c, k, _ in table] == [(0, last), (1, last)]
    assert all(r == pytest.approx(6.0) for _, _, r in table)
