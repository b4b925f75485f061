"""Curves out of a segmentation: per column, the centre of every vertical run of a curve class's pixels.

The one extraction of the project: the curve metrics score it, ``study.predict`` writes it to ``curves.csv``
and the report draws it. A curve is x-monotone (one row per column), so in each column every run of pixels
that the decision rule gives class k is a candidate point of a class-k curve; its centre is the run's centroid
weighted by the class probability (sub-pixel; the exact stroke centre for a symmetric stroke).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.modes import TaskMode


def run_centres(mask: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Centres of the vertical runs of ``mask``, written at each run's last row.

    Args:
        mask: (N, H, W) bool.
        weight: (N, H, W) float, e.g. the class probability; None weighs every pixel the same.
    Returns:
        (N, H, W) float32: at the last row of every run, the run's (weighted) centre row; NaN elsewhere.
    """
    n, h, w = mask.shape
    wgt = mask.float() if weight is None else weight.float() * mask  # (N, H, W)
    rows = torch.arange(h, device=mask.device, dtype=torch.float32).view(1, h, 1)
    cum_w = F.pad(wgt.cumsum(1), (0, 0, 1, 0))  # (N, H + 1, W), cum_w[:, r] = sum of rows < r
    cum_wr = F.pad((wgt * rows).cumsum(1), (0, 0, 1, 0))
    above = F.pad(mask, (0, 0, 1, 0))[:, :-1]  # (N, H, W), the row above
    below = F.pad(mask, (0, 0, 0, 1))[:, 1:]  # the row below
    index = torch.arange(h, device=mask.device).view(1, h, 1).expand(n, h, w)
    start = torch.where(mask & ~above, index, torch.zeros_like(index)).cummax(dim=1).values  # (N, H, W)
    end = index + 1  # exclusive
    total = cum_w.gather(1, end) - cum_w.gather(1, start)  # weight of the run ending here
    moment = cum_wr.gather(1, end) - cum_wr.gather(1, start)
    plain = (start.float() + index.float()) / 2.0  # unweighted centre, where the weights sum to 0
    centre = torch.where(total > 0, moment / total.clamp_min(1e-12), plain)
    return torch.where(mask & ~below, centre, torch.full_like(centre, float("nan")))


def class_candidates(mode: TaskMode, logits: torch.Tensor) -> torch.Tensor:
    """Run centres of every curve class, by the mode's decision rule.

    Args:
        logits: (B, C, H, W) of the task mode.
    Returns:
        (B, Kc, H, W) float32, Kc = ``len(mode.curve_classes)`` in that order; NaN where no run ends.
    """
    probs = mode.probabilities(logits)  # (B, K, H, W) float32
    pred = mode.predict(logits)  # (B, H, W)
    out = [run_centres(pred == c, probs[:, c]) for c in mode.curve_classes]  # each (B, H, W)
    return torch.stack(out, dim=1)


def candidates_table(centres: torch.Tensor, classes: tuple[int, ...]) -> list[tuple[int, int, float]]:
    """(column, class, row) of every candidate of one image, sorted by column, class, row.

    Args:
        centres: (Kc, H, W) from ``class_candidates`` for one image.
        classes: the class of each of the Kc planes.
    """
    found = torch.nonzero(torch.isfinite(centres), as_tuple=False)  # (M, 3): plane, row, column
    rows = centres[found[:, 0], found[:, 1], found[:, 2]]
    table = [(int(c), classes[int(k)], float(r)) for (k, _, c), r in zip(found.tolist(), rows.tolist(), strict=True)]
    return sorted(table)
