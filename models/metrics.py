"""Dataset-level validation metrics (DOMAIN section 6), accumulated as sum states in one torchmetrics Metric.

* Pixel IoU / Dice per class from a confusion matrix that drops ``IGNORE_INDEX`` pixels; ``_fg`` averages
  the curve classes.
* Tolerant F1 at 2 px over curve classes: P = |pred & dil(GT)| / |pred|, R = |GT & dil(pred)| / |GT|,
  dilation by a 5x5 max-pool; numerators and denominators summed over the dataset.
* Curve-level MAE (fraction of track height) and coverage: each true curve is extracted per column from
  the prediction inside its track band +-8 px (the oracle layout), then averaged over curves.

Names come from ``models.metric_names``; nothing here retypes them without checking.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from datamodules.collate import Batch
from datamodules.labels import IGNORE_INDEX
from models.metric_names import METRICS
from models.modes import TaskMode, mode_for

TOLERANCE_PX = 2
BAND_MARGIN_PX = 8
PRESENCE_THRESHOLD = 0.5
MATCH_CAP_PX = 20.0  # binary: a run centre farther than this from the true row does not count
NO_COVERAGE_ERROR = 0.5  # MAE of a curve with no covered column, in track heights
_CHUNK_ELEMENTS = 1 << 26  # band crops are processed in chunks of at most this many elements


def _name(name: str) -> str:
    if name not in METRICS:
        raise KeyError(f"{name!r} is not defined in models.metric_names")
    return name


TRAIN_LOSS = _name("train_loss")
VAL_LOSS = _name("val_loss")
IOU_FG = _name("val_iou_fg")
DICE_FG = _name("val_dice_fg")
F1_TOL2 = _name("val_f1_tol2")
CURVE_MAE = _name("val_curve_mae")
CURVE_COVERAGE = _name("val_curve_coverage")


def per_class_name(kind: str, cls: int) -> str:
    """``val_iou_c{cls}`` / ``val_dice_c{cls}``, checked against ``models.metric_names``."""
    return _name(f"val_{kind}_c{cls}")


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

    def __init__(self, task: str | TaskMode, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = mode_for(task)
        k = self.mode.num_classes
        self.add_state("confmat", torch.zeros(k, k, dtype=torch.long), dist_reduce_fx="sum")
        # tolerant F1 counts, summed over curve classes: pred & dil(gt), pred, gt & dil(pred), gt
        self.add_state("tol_counts", torch.zeros(4, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("mae_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("coverage_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n_curves", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

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

        mae, coverage = curve_errors(self.mode, logits, batch)  # (N,), (N,)
        self.mae_sum += mae.double().sum()
        self.coverage_sum += coverage.double().sum()
        self.n_curves += mae.numel()

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
        hit_p, n_p, hit_g, n_g = self.tol_counts.double()
        precision, recall = _safe_div(hit_p, n_p), _safe_div(hit_g, n_g)
        out[F1_TOL2] = _safe_div(2 * precision * recall, precision + recall)
        n = self.n_curves.double()
        out[CURVE_MAE] = _safe_div(self.mae_sum, n, empty=NO_COVERAGE_ERROR)
        out[CURVE_COVERAGE] = _safe_div(self.coverage_sum, n)
        return {key: value.float() for key, value in out.items()}


def metrics_from_logits(task: str | TaskMode, logits: torch.Tensor, batch: Batch) -> dict[str, float]:
    """One-shot metrics of a single batch, as plain floats."""
    metric = SegmentationMetrics(task).to(logits.device)
    metric.update(logits, batch)
    return {key: float(value) for key, value in metric.compute().items()}


def curve_errors(mode: TaskMode, logits: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-curve MAE (fraction of track height) and coverage of every real curve slot in the batch.

    Returns two (N,) float32 tensors, N = number of curve slots with class >= 0.
    """
    b_idx, k_idx = torch.nonzero(batch.curve_classes >= 0, as_tuple=True)  # (N,), (N,)
    if b_idx.numel() == 0:
        empty = logits.new_zeros(0, dtype=torch.float32)
        return empty, empty
    h_img = batch.sizes[b_idx, 0]  # (N,) unpadded heights
    tracks = batch.curve_tracks[b_idx, k_idx]  # (N, 2) top, bottom row
    lo = (tracks[:, 0].floor().long() - BAND_MARGIN_PX).clamp_min(0)  # (N,)
    hi = torch.minimum(tracks[:, 1].ceil().long() + BAND_MARGIN_PX, h_img - 1)  # (N,) inclusive
    band_h = int((hi - lo).max()) + 1
    classes = batch.curve_classes[b_idx, k_idx] if not mode.is_binary else torch.ones_like(b_idx)
    gt = batch.curve_rows[b_idx, k_idx] - lo.unsqueeze(1).float()  # (N, W), band coordinates
    track_h = (tracks[:, 1] - tracks[:, 0]).clamp_min(1.0)  # (N,)

    w = logits.shape[-1]
    chunk = max(1, _CHUNK_ELEMENTS // (band_h * w * logits.shape[1]))
    rows_pred = []
    for s in range(0, b_idx.numel(), chunk):
        sl = slice(s, s + chunk)
        rows = lo[sl, None] + torch.arange(band_h, device=lo.device)  # (n, Hb)
        rows = torch.minimum(rows, hi[sl, None])
        crop = logits[b_idx[sl, None], :, rows]  # (n, Hb, C, W) via advanced indexing
        crop = crop.permute(0, 2, 1, 3)  # (n, C, Hb, W)
        # counts: inside the band, not an ignored (padding or invisible-ink) pixel
        use = (lo[sl, None] + torch.arange(band_h, device=lo.device) <= hi[sl, None]).unsqueeze(-1)
        use = use & (batch.labels[b_idx[sl, None], rows] != IGNORE_INDEX)  # (n, Hb, W)
        if mode.is_binary:
            rows_pred.append(_match_runs((crop[:, 0] > 0) & use, gt[sl]))
        else:
            p = crop.float().softmax(dim=1)  # (n, C, Hb, W)
            p = p.gather(1, classes[sl].view(-1, 1, 1, 1).expand(-1, 1, band_h, w)).squeeze(1)  # (n, Hb, W)
            rows_pred.append(_argmax_rows(p * use))
    pred = torch.cat(rows_pred)  # (N, W), NaN where missing
    return _score(pred, gt, track_h)


def _argmax_rows(p: torch.Tensor) -> torch.Tensor:
    """Per-column argmax row, parabola-refined; NaN where the peak < threshold. (n, Hb, W) -> (n, W)."""
    peak, r = p.max(dim=1)  # (n, W)
    hb = p.shape[1]
    up = p.gather(1, (r - 1).clamp_min(0).unsqueeze(1)).squeeze(1)  # (n, W)
    down = p.gather(1, (r + 1).clamp_max(hb - 1).unsqueeze(1)).squeeze(1)
    curv = up - 2 * peak + down
    delta = torch.where(curv < 0, 0.5 * (up - down) / curv.clamp_max(-1e-12), torch.zeros_like(peak))
    row = r.float() + delta.clamp(-0.5, 0.5)
    return torch.where(peak >= PRESENCE_THRESHOLD, row, torch.full_like(row, float("nan")))


def _match_runs(mask: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Binary: per column, the centre of the positive run nearest the true row (cap 20 px), else NaN.

    mask (n, Hb, W) bool, gt (n, W) true rows in band coordinates -> (n, W).
    """
    n, hb, w = mask.shape
    prev = F.pad(mask, (0, 0, 1, 0))[:, :-1]  # (n, Hb, W), row above
    nxt = F.pad(mask, (0, 0, 0, 1))[:, 1:]  # row below
    rows = torch.arange(hb, device=mask.device).view(1, hb, 1).expand(n, hb, w)
    start = torch.where(mask & ~prev, rows, -1)  # run starts, else -1
    start = start.cummax(dim=1).values  # (n, Hb, W): start of the run each row belongs to (or a past one)
    centre = (start.float() + rows.float()) / 2.0  # valid at run ends
    is_end = mask & ~nxt
    dist = torch.where(is_end, (centre - gt.unsqueeze(1)).abs(), torch.full_like(centre, float("inf")))
    best, arg = dist.min(dim=1)  # (n, W)
    row = centre.gather(1, arg.unsqueeze(1)).squeeze(1)
    found = best <= MATCH_CAP_PX
    return torch.where(found, row, torch.full_like(row, float("nan")))


def _score(pred: torch.Tensor, gt: torch.Tensor, track_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MAE over defined columns (missing ones linearly interpolated) and coverage. (n, W) -> (n,), (n,)."""
    defined = torch.isfinite(gt)  # (n, W)
    covered = defined & torch.isfinite(pred)
    n, w = pred.shape
    cols = torch.arange(w, device=pred.device).expand(n, w)
    left = torch.where(covered, cols, -1).cummax(dim=1).values  # last covered column at or before x
    right = torch.where(covered, cols, w).flip(1).cummin(dim=1).values.flip(1)  # first at or after x
    has_l, has_r = left >= 0, right < w
    vals = torch.where(covered, pred, torch.zeros_like(pred))
    v_l = vals.gather(1, left.clamp(0, w - 1))
    v_r = vals.gather(1, right.clamp(0, w - 1))
    t = (cols - left).float() / (right - left).clamp_min(1).float()
    interp = torch.where(has_l & has_r, v_l + t * (v_r - v_l), torch.where(has_l, v_l, v_r))
    err = (interp - torch.where(defined, gt, torch.zeros_like(gt))).abs() / track_h.unsqueeze(1)  # (n, W)
    n_def = defined.sum(1)  # (n,)
    n_cov = covered.sum(1)
    mae = (err * defined).sum(1) / n_def.clamp_min(1)
    mae = torch.where(n_cov > 0, mae, torch.full_like(mae, NO_COVERAGE_ERROR))
    coverage = n_cov.float() / n_def.clamp_min(1).float()
    keep = n_def > 0  # a curve slot with no defined column says nothing
    return mae[keep].float(), coverage[keep].float()
