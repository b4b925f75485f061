"""Dataset-level validation metrics, accumulated as sum states in one torchmetrics Metric.

Pixel IoU/Dice per class and their means, a 2-px tolerant F1, and the curve metrics (a two-sided column-wise
chamfer, coverage, R^2 and MAE at 300 points). Every definition and formula is in docs/metrics.md. Names come
from ``models.metric_names``; nothing here retypes them without checking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from datamodules.collate import Batch
from datamodules.labels import IGNORE_INDEX
from models.extraction import run_centres
from models.metric_names import METRICS, PER_CLASS_METRICS
from models.modes import TaskMode, mode_for

TOLERANCE_PX = 2
BAND_MARGIN_PX = 8
CAP = 0.15  # chamfer distances are capped here, in track heights (about 20 px on a full-scale track)
HALF_PIXEL = 0.5
RESAMPLE_POINTS = 300
MIN_RANGE_PX = 4.0  # a curve moving less than this (in rows) is left out of R^2 / MAE at 300 points
_CHUNK_ELEMENTS = 1 << 25  # band crops are processed in chunks of at most this many elements


def _name(name: str) -> str:
    if name not in METRICS:
        raise KeyError(f"{name!r} is not defined in models.metric_names")
    return name


TRAIN_LOSS = _name("train_loss")
VAL_LOSS = _name("val_loss")
IOU_FG = _name("val_iou_fg")
DICE_FG = _name("val_dice_fg")
MIOU_ALL = _name("val_miou_all")
F1_TOL2 = _name("val_f1_tol2")
CURVE_MAE = _name("val_curve_mae")
CURVE_COVERAGE = _name("val_curve_coverage")
R2_300 = _name("val_r2_300")
MAE_300 = _name("val_mae_300")


def per_class_name(kind: str, cls: int) -> str:
    """``val_{kind}_c{cls}`` (iou, dice, r2_300, mae_300), checked against ``models.metric_names``."""
    name = f"val_{kind}_c{cls}"
    if name not in PER_CLASS_METRICS:
        raise KeyError(f"{name!r} is not defined in models.metric_names")
    return name


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    """Square (2 tol + 1) max-pool dilation, done as two separable passes. (B, 1, H, W) -> same."""
    k, t = 2 * TOLERANCE_PX + 1, TOLERANCE_PX
    mask = F.max_pool2d(mask, (k, 1), stride=1, padding=(t, 0))
    return F.max_pool2d(mask, (1, k), stride=1, padding=(0, t))


def _safe_div(num: torch.Tensor, den: torch.Tensor, empty: float = 0.0) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp_min(1e-12), torch.full_like(num, empty))


class SegmentationMetrics(Metric):
    """Accumulates a validation epoch; ``compute()`` returns ``{metric name: 0-dim tensor}``.

    ``update(logits, batch)``: logits (B, C, H, W) of the task mode, batch a padded ``Batch``.
    """

    full_state_update = False
    higher_is_better = None

    # The sum states that ``add_state`` registers in ``__init__`` (nn.Module's attribute lookup types them
    # as ``Tensor | Module``).
    confmat: torch.Tensor
    tol_counts: torch.Tensor
    chamfer: torch.Tensor
    scored_cols: torch.Tensor
    coverage_sum: torch.Tensor
    n_curves: torch.Tensor
    r300: torch.Tensor

    def __init__(self, task: str | TaskMode, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = mode_for(task)
        k = self.mode.num_classes
        self.add_state("confmat", torch.zeros(k, k, dtype=torch.long), dist_reduce_fx="sum")
        # tolerant F1 counts, summed over curve classes: pred & dil(gt), pred, gt & dil(pred), gt
        self.add_state("tol_counts", torch.zeros(4, dtype=torch.long), dist_reduce_fx="sum")
        # chamfer: recall and precision sums (track heights) and the scored columns they are divided by
        self.add_state("chamfer", torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("scored_cols", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("coverage_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n_curves", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        # per class (index = class): sums of R^2 and MAE at 300 points, and how many curves they hold
        self.add_state("r300", torch.zeros(3, k, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, batch: Batch) -> None:
        logits = logits.detach()
        target = batch.labels  # (B, H, W)
        valid = target != IGNORE_INDEX  # (B, H, W)
        pred = self.mode.predict(logits)  # (B, H, W)
        k = self.mode.num_classes
        idx = target[valid] * k + pred[valid]  # row = truth, column = prediction
        self.confmat += torch.bincount(idx, minlength=k * k).reshape(k, k)

        for c in self.mode.curve_classes:
            p = ((pred == c) & valid).float().unsqueeze(1)  # (B, 1, H, W)
            g = (target == c).float().unsqueeze(1)  # (B, 1, H, W), never set on 255 pixels
            dil_g, dil_p = _dilate(g), _dilate(p)
            counts = torch.stack([(p * dil_g).sum(), p.sum(), (g * dil_p).sum(), g.sum()])
            self.tol_counts += counts.round().long()

        curves = CurveScores.of(self.mode, logits, pred, batch)
        self.chamfer += torch.stack([curves.recall_sum, curves.precision_sum]).double()
        self.scored_cols += curves.scored_cols
        self.coverage_sum += curves.coverage.double().sum()
        self.n_curves += curves.coverage.numel()
        for c in self.mode.curve_classes:
            of_c = (curves.classes == c) & torch.isfinite(curves.r2)
            self.r300[0, c] += of_c.sum()
            self.r300[1, c] += curves.r2[of_c].double().sum()
            self.r300[2, c] += curves.mae300[of_c].double().sum()

    def compute(self) -> dict[str, torch.Tensor]:
        cm = self.confmat.double()
        tp = cm.diag()
        fp = cm.sum(0) - tp
        fn = cm.sum(1) - tp
        iou = _safe_div(tp, tp + fp + fn)
        dice = _safe_div(2 * tp, 2 * tp + fp + fn)
        curve = list(self.mode.curve_classes)
        out = {}
        for c in range(self.mode.num_classes):
            out[per_class_name("iou", c)] = iou[c]
            out[per_class_name("dice", c)] = dice[c]
        out[IOU_FG] = iou[curve].mean()
        out[DICE_FG] = dice[curve].mean()
        out[MIOU_ALL] = iou.mean()
        hit_p, n_p, hit_g, n_g = self.tol_counts.double()
        precision, recall = _safe_div(hit_p, n_p), _safe_div(hit_g, n_g)
        out[F1_TOL2] = _safe_div(2 * precision * recall, precision + recall)
        cols = self.scored_cols.double()
        out[CURVE_MAE] = _safe_div(self.chamfer.sum() / 2, cols, empty=CAP)
        out[CURVE_COVERAGE] = _safe_div(self.coverage_sum, self.n_curves.double())
        count, r2, mae = self.r300
        r2_c = _safe_div(r2, count, empty=0.0)  # no curve to score: the worst plausible values
        mae_c = _safe_div(mae, count, empty=1.0)
        for c in curve:
            out[per_class_name("r2_300", c)] = r2_c[c]
            out[per_class_name("mae_300", c)] = mae_c[c]
        out[R2_300] = r2_c[curve].mean()
        out[MAE_300] = mae_c[curve].mean()
        return {key: value.float() for key, value in out.items()}


def metrics_from_logits(task: str | TaskMode, logits: torch.Tensor, batch: Batch) -> dict[str, float]:
    """One-shot metrics of a single batch, as plain floats."""
    metric = SegmentationMetrics(task).to(logits.device)
    metric.update(logits, batch)
    return {key: float(value) for key, value in metric.compute().items()}


@dataclass(frozen=True)
class CurveScores:
    """The curve-level scores of one batch (docs/metrics.md, 'Chamfer'). Shapes: N = curves in the batch.

    Attributes:
        recall_sum, precision_sum: 0-dim, the two chamfer sums in track heights.
        scored_cols: 0-dim long, scored columns of all curves.
        classes, coverage, r2, mae300: (N,); r2 and mae300 NaN for curves left out of the 300-point protocol.
    """

    recall_sum: torch.Tensor
    precision_sum: torch.Tensor
    scored_cols: torch.Tensor
    classes: torch.Tensor
    coverage: torch.Tensor
    r2: torch.Tensor
    mae300: torch.Tensor

    @classmethod
    def of(cls, mode: TaskMode, logits: torch.Tensor, pred: torch.Tensor, batch: Batch) -> CurveScores:
        b_idx, k_idx = torch.nonzero(batch.curve_classes >= 0, as_tuple=True)  # (N,), (N,)
        classes = batch.curve_classes[b_idx, k_idx]  # (N,)
        tracks = batch.curve_tracks[b_idx, k_idx]  # (N, 2) top, bottom row
        track_h = (tracks[:, 1] - tracks[:, 0]).clamp_min(1.0)  # (N,)
        scored = batch.curve_scored[b_idx, k_idx] & torch.isfinite(batch.curve_rows[b_idx, k_idx])  # (N, W)
        gt = batch.curve_rows[b_idx, k_idx]  # (N, W)
        valid = batch.labels != IGNORE_INDEX  # (B, H, W)

        near, centre = _recall(mode, logits, pred, valid, batch, b_idx, classes, tracks, gt)  # (N, W) px, rows
        cap_px = CAP * track_h.unsqueeze(1)  # (N, 1)
        reached = scored & (near <= cap_px)  # (N, W)
        d_plus = torch.minimum((near - HALF_PIXEL).clamp_min(0.0), cap_px) / track_h.unsqueeze(1)  # (N, W)
        n_scored = scored.sum(1)  # (N,)
        coverage = reached.sum(1).float() / n_scored.clamp_min(1).float()
        r2, mae300 = _resampled_scores(centre, gt, scored, batch.curve_laps[b_idx, k_idx], tracks)
        keep = n_scored > 0  # a curve slot with no scored column says nothing
        return cls(
            recall_sum=torch.where(scored, d_plus, torch.zeros_like(d_plus)).sum(),
            precision_sum=_precision(mode, pred, valid, batch),
            scored_cols=n_scored.sum(),
            classes=classes[keep],
            coverage=coverage[keep],
            r2=r2[keep],
            mae300=mae300[keep],
        )


def _recall(
    mode: TaskMode,
    logits: torch.Tensor,
    pred: torch.Tensor,
    valid: torch.Tensor,
    batch: Batch,
    b_idx: torch.Tensor,
    classes: torch.Tensor,
    tracks: torch.Tensor,
    gt: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per curve and column: the distance (rows) from the true row to the nearest predicted pixel of the curve's
    class in its band, and the nearest run centre of that class (NaN where none within the cap). (N, W) each."""
    n, w = gt.shape
    if n == 0:
        empty = gt.new_zeros(0, w)
        return empty, empty
    h_img = batch.sizes[b_idx, 0]  # (N,) unpadded heights
    lo = (tracks[:, 0].floor().long() - BAND_MARGIN_PX).clamp_min(0)  # (N,)
    hi = torch.minimum(tracks[:, 1].ceil().long() + BAND_MARGIN_PX, h_img - 1)  # (N,) inclusive
    band_h = int((hi - lo).max()) + 1
    cap_px = CAP * (tracks[:, 1] - tracks[:, 0]).clamp_min(1.0)  # (N,)
    chunk = max(1, _CHUNK_ELEMENTS // (band_h * w))
    near_out, centre_out = [], []
    for s in range(0, n, chunk):
        sl = slice(s, s + chunk)
        rows = lo[sl, None] + torch.arange(band_h, device=lo.device)  # (n, Hb)
        inside = (rows <= hi[sl, None]).unsqueeze(-1)  # (n, Hb, 1)
        rows = torch.minimum(rows, hi[sl, None])
        bi = b_idx[sl, None]
        mine = (pred[bi, rows] == classes[sl, None, None]) & valid[bi, rows] & inside  # (n, Hb, W)
        # the class probability, needed only where the class wins (a few per cent of the band)
        ci, ri, xi = torch.nonzero(mine, as_tuple=True)  # (M,) each
        at = logits[b_idx[sl][ci], :, rows[ci, ri], xi]  # (M, C)
        p = mode.probabilities(at.view(*at.shape, 1, 1)).view(at.shape[0], mode.num_classes)  # (M, K)
        weight = torch.zeros(mine.shape, dtype=torch.float32, device=mine.device)  # (n, Hb, W)
        weight[ci, ri, xi] = p.gather(1, classes[sl][ci].unsqueeze(1)).squeeze(1)
        row_f = rows.float().unsqueeze(-1)  # (n, Hb, 1) absolute rows
        y = gt[sl].unsqueeze(1)  # (n, 1, W)
        dist = torch.where(mine, (row_f - y).abs(), torch.full_like(weight, float("inf")))
        near_out.append(dist.min(dim=1).values)  # (n, W)
        centres = run_centres(mine, weight) + rows[:, 0].float().view(-1, 1, 1)  # (n, Hb, W) absolute rows
        off = torch.where(torch.isfinite(centres), (centres - y).abs(), torch.full_like(weight, float("inf")))
        best, arg = off.min(dim=1)  # (n, W)
        picked = centres.gather(1, arg.unsqueeze(1)).squeeze(1)
        centre_out.append(torch.where(best <= cap_px[sl, None], picked, torch.full_like(picked, float("nan"))))
    return torch.cat(near_out), torch.cat(centre_out)


def _precision(mode: TaskMode, pred: torch.Tensor, valid: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Sum over predicted curve-class pixels of the distance to the nearest true ink of their class in their
    column (label pixels and centreline rows), in track heights, capped at CAP. Returns a 0-dim tensor."""
    _, h, _ = pred.shape
    rows = torch.arange(h, device=pred.device, dtype=torch.int32).view(h, 1)
    heights = batch.curve_tracks[..., 1] - batch.curve_tracks[..., 0]  # (B, K), NaN where padded
    total = pred.new_zeros((), dtype=torch.float64)
    for b in range(pred.shape[0]):  # one image at a time keeps the (H, W) temporaries small
        track_h = heights[b].nanmedian()
        track_h = track_h.clamp_min(1.0) if torch.isfinite(track_h) else batch.sizes[b, 0].float() / 3.0
        for c in mode.curve_classes:
            mine = (pred[b] == c) & valid[b]  # (H, W)
            if not mine.any():
                continue
            support = batch.labels[b] == c  # (H, W)
            line = (batch.curve_classes[b] == c).unsqueeze(-1) & torch.isfinite(batch.curve_rows[b])  # (K, W)
            ki, xi = torch.nonzero(line, as_tuple=True)
            support[batch.curve_rows[b, ki, xi].round().long().clamp(0, h - 1), xi] = True
            far = torch.tensor(1 << 30, dtype=torch.int32, device=pred.device)
            above = torch.where(support, rows, -far).cummax(dim=0).values  # (H, W)
            below = torch.where(support, rows, far).flip(0).cummin(dim=0).values.flip(0)
            dist = torch.minimum(rows - above, below - rows).float() / track_h  # huge where a column has none
            total += dist[mine].clamp_max(CAP).sum().double()
    return total


def _fill(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``values`` across columns where ``known`` is False (nearest beyond the ends).
    (n, W) -> (n, W); rows with nothing known stay NaN."""
    n, w = values.shape
    cols = torch.arange(w, device=values.device).expand(n, w)
    left = torch.where(known, cols, -1).cummax(dim=1).values
    right = torch.where(known, cols, w).flip(1).cummin(dim=1).values.flip(1)
    has_l, has_r = left >= 0, right < w
    vals = torch.where(known, values, torch.zeros_like(values))
    v_l = vals.gather(1, left.clamp(0, w - 1))
    v_r = vals.gather(1, right.clamp(0, w - 1))
    t = (cols - left).float() / (right - left).clamp_min(1).float()
    out = torch.where(has_l & has_r, v_l + t * (v_r - v_l), torch.where(has_l, v_l, v_r))
    return torch.where(known.any(dim=1, keepdim=True), out, torch.full_like(out, float("nan")))


def _resampled_scores(
    centre: torch.Tensor, gt: torch.Tensor, scored: torch.Tensor, laps: torch.Tensor, tracks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """R^2 and MAE (in units of the truth's range) of each curve at 300 points. (N, W) -> (N,), (N,)."""
    n, w = gt.shape
    if n == 0:
        empty = gt.new_zeros(0)
        return empty, empty
    track_h = (tracks[:, 1] - tracks[:, 0]).clamp_min(1.0).unsqueeze(1)  # (N, 1)
    # unwrapped position: rows grow downwards, positions upwards; one lap = one track height
    truth = -gt / track_h + laps.float()  # (N, W), affine in the value (log10 on log tracks)
    found = scored & torch.isfinite(centre)
    pred = truth - torch.where(found, centre - gt, torch.zeros_like(gt)) / track_h
    drawn = torch.isfinite(gt)  # the truth is known in dash gaps too; only the scoring skips them
    truth_f = _fill(torch.where(drawn, truth, torch.zeros_like(truth)), drawn)
    error_f = _fill(torch.where(found, pred - truth, torch.zeros_like(truth)), found)  # (N, W)
    cols = torch.arange(w, device=gt.device).float().expand(n, w)
    first = torch.where(scored, cols, torch.full_like(cols, float(w))).min(dim=1).values  # (N,)
    last = torch.where(scored, cols, torch.full_like(cols, -1.0)).max(dim=1).values
    steps = torch.linspace(0.0, 1.0, RESAMPLE_POINTS, device=gt.device)
    x = (first.unsqueeze(1) + steps * (last - first).clamp_min(0).unsqueeze(1)).clamp(0, w - 1)  # (N, 300)
    x0 = x.floor().long()
    x1 = (x0 + 1).clamp_max(w - 1)
    frac = x - x0.float()

    def at(v: torch.Tensor) -> torch.Tensor:
        return v.gather(1, x0) * (1 - frac) + v.gather(1, x1) * frac  # (N, 300)

    t300 = at(torch.nan_to_num(truth_f))
    e300 = at(torch.nan_to_num(error_f))
    spread = t300.amax(1) - t300.amin(1)  # (N,)
    ss_tot = ((t300 - t300.mean(1, keepdim=True)) ** 2).sum(1)
    r2 = 1.0 - (e300**2).sum(1) / ss_tot.clamp_min(1e-12)
    mae = e300.abs().mean(1) / spread.clamp_min(1e-12)
    missed = ~found.any(dim=1)
    r2 = torch.where(missed, torch.zeros_like(r2), r2)
    mae = torch.where(missed, torch.ones_like(mae), mae)
    shapeless = (spread * track_h.squeeze(1) < MIN_RANGE_PX) | ~scored.any(dim=1)
    nan = torch.full_like(r2, float("nan"))
    return torch.where(shapeless, nan, r2), torch.where(shapeless, nan, mae)
