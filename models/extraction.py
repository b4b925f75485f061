"""Curves out of a segmentation: per column, the centre of every vertical run of a curve class's pixels.

The one extraction of the project: the curve metrics score it, ``study.predict`` writes it to ``curves.csv``
and the report draws it. A curve is x-monotone (one row per column), so in each column every run of pixels
that the decision rule gives class k is a candidate point of a class-k curve; its centre is the run's centroid
weighted by the class probability (sub-pixel; the exact stroke centre for a symmetric stroke).
"""

from __future__ import annotations

import torch

from models.modes import TaskMode


def run_centres(mask: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Centres of the vertical runs of ``mask``, written at each run's last row.

    Args:
        mask: (N, H, W) bool.
        weight: (N, H, W) float, e.g. the class probability; None weighs every pixel the same.
    Returns:
        (N, H, W) float32: at the last row of every run, the run's (weighted) centre row; NaN elsewhere.
    """
    out = torch.full(mask.shape, float("nan"), dtype=torch.float32, device=mask.device)
    img, col, row = torch.nonzero(mask.transpose(1, 2), as_tuple=True)  # (M,) each, ordered image, column, row
    m = row.numel()
    if m == 0:
        return out
    starts = torch.ones(m, dtype=torch.bool, device=mask.device)  # a pixel that opens a run
    starts[1:] = (img[1:] != img[:-1]) | (col[1:] != col[:-1]) | (row[1:] != row[:-1] + 1)
    ends = torch.ones_like(starts)  # a pixel that closes one
    ends[:-1] = starts[1:]
    run = starts.cumsum(0) - 1  # (M,) run of each pixel
    n_runs = int(run[-1]) + 1
    wgt = torch.ones(m, device=mask.device) if weight is None else weight[img, row, col].float()
    total = torch.zeros(n_runs, device=mask.device).index_add_(0, run, wgt)  # (R,)
    moment = torch.zeros(n_runs, device=mask.device).index_add_(0, run, wgt * row.float())
    plain = (row[starts].float() + row[ends].float()) / 2.0  # unweighted centre, where the weights sum to 0
    centre = torch.where(total > 0, moment / total.clamp_min(1e-12), plain)
    out[img[ends], row[ends], col[ends]] = centre
    return out


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
