"""Mode-keyed segmentation losses. Every loss ignores ``IGNORE_INDEX`` pixels and computes in float32.

All losses take logits (B, C, H, W) (C = 1 binary, 3 multiclass) and targets (B, H, W) int64, and reduce
over the valid pixels of the whole batch, so padding a batch (labels 255) never changes the value.
Region losses (Dice, Tversky) sum their counts over the batch, then average over curve classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from datamodules.collate import IGNORE_INDEX
from models.modes import TaskMode, mode_for

LOSSES: dict[str, tuple[str, ...]] = {
    "binary": ("bce", "dice", "bce_dice", "focal", "tversky"),
    "multiclass": ("ce", "dice", "ce_dice", "focal", "tversky"),
}
DEFAULT_LOSS: dict[str, str] = {"binary": "bce_dice", "multiclass": "ce_dice"}
WEIGHT_SCHEMES = ("none", "inverse_sqrt", "inverse")
MAX_CLASS_WEIGHT = 50.0
_EPS = 1e-6


def _mean_valid(per_pixel: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean; 0 (with a gradient path) when nothing is valid."""
    return (per_pixel * weight).sum() / weight.sum().clamp_min(_EPS)


class _ModeLoss(nn.Module):
    """Shared preparation: float32 class probabilities, one-hot targets and the valid-pixel mask."""

    def __init__(self, mode: TaskMode) -> None:
        super().__init__()
        self.mode = mode

    def _prepare(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        valid = target != IGNORE_INDEX  # (B, H, W)
        safe = torch.where(valid, target, torch.zeros_like(target))  # (B, H, W), 255 -> 0
        probs = self.mode.probabilities(logits)  # (B, K, H, W) float32
        onehot = F.one_hot(safe, self.mode.num_classes).permute(0, 3, 1, 2).float()  # (B, K, H, W)
        return probs, onehot, valid.unsqueeze(1).float()  # valid (B, 1, H, W)


class BCELoss(_ModeLoss):
    def __init__(self, mode: TaskMode, pos_weight: float = 1.0) -> None:
        super().__init__(mode)
        self.register_buffer("pos_weight", torch.tensor(float(pos_weight)), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = (target != IGNORE_INDEX).float()  # (B, H, W)
        t = (target == 1).float()  # (B, H, W)
        bce = F.binary_cross_entropy_with_logits(logits[:, 0].float(), t, pos_weight=self.pos_weight, reduction="none")
        return _mean_valid(bce, valid)


class CELoss(_ModeLoss):
    def __init__(self, mode: TaskMode, class_weights: Sequence[float] | None = None) -> None:
        super().__init__(mode)
        w = torch.ones(mode.num_classes) if class_weights is None else torch.tensor(class_weights).float()
        self.register_buffer("class_weights", w, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != IGNORE_INDEX
        ce = F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX, reduction="none")  # (B, H, W)
        w = self.class_weights[torch.where(valid, target, 0)] * valid  # (B, H, W)
        return _mean_valid(ce, w)


class FocalLoss(_ModeLoss):
    """Focal loss. Binary: alpha balances positives; multiclass: ``class_weights`` act as per-class alpha."""

    def __init__(
        self,
        mode: TaskMode,
        gamma: float = 2.0,
        alpha: float = 0.25,
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(mode)
        self.gamma = gamma
        if mode.is_binary:
            w = torch.tensor([1.0 - alpha, alpha])
        else:
            w = torch.ones(mode.num_classes) if class_weights is None else torch.tensor(class_weights).float()
        self.register_buffer("class_weights", w, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != IGNORE_INDEX
        safe = torch.where(valid, target, 0)  # (B, H, W)
        logp = self.mode.log_probabilities(logits)  # (B, K, H, W)
        logp_t = logp.gather(1, safe.unsqueeze(1)).squeeze(1)  # (B, H, W)
        per_pixel = -((1.0 - logp_t.exp()) ** self.gamma) * logp_t * self.class_weights[safe]
        return _mean_valid(per_pixel, valid.float())


class TverskyLoss(_ModeLoss):
    """1 - TP / (TP + alpha FP + beta FN), counts summed over the batch, mean over curve classes.

    alpha = beta = 0.5 is soft Dice.
    """

    def __init__(self, mode: TaskMode, alpha: float = 0.3, beta: float = 0.7) -> None:
        super().__init__(mode)
        self.alpha, self.beta = alpha, beta
        self.curve = list(mode.curve_classes)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs, onehot, valid = self._prepare(logits, target)
        p = probs[:, self.curve] * valid  # (B, Kc, H, W)
        t = onehot[:, self.curve] * valid  # (B, Kc, H, W)
        tp = (p * t).sum((0, 2, 3))  # (Kc,)
        fp = (p * (1.0 - t)).sum((0, 2, 3))
        fn = ((1.0 - p) * t).sum((0, 2, 3))
        score = (tp + _EPS) / (tp + self.alpha * fp + self.beta * fn + _EPS)
        return 1.0 - score.mean()


class SumLoss(nn.Module):
    """``first + weight * second``."""

    def __init__(self, first: nn.Module, second: nn.Module, weight: float) -> None:
        super().__init__()
        self.first, self.second, self.weight = first, second, weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.first(logits, target) + self.weight * self.second(logits, target)


def build_loss(
    task: str | TaskMode,
    name: str,
    *,
    pos_weight: float = 1.0,
    class_weights: Sequence[float] | None = None,
    dice_weight: float = 1.0,
    focal_gamma: float = 2.0,
    focal_alpha: float = 0.25,
    tversky_alpha: float = 0.3,
    tversky_beta: float = 0.7,
) -> nn.Module:
    """The loss ``name`` for ``task``: a module mapping (logits (B, C, H, W), targets (B, H, W)) to a scalar.

    ``pos_weight`` applies to binary BCE; ``class_weights`` (one per class) to multiclass CE and focal.
    Raises ValueError for an unknown name, listing the names allowed for the task.
    """
    mode = mode_for(task)
    if name not in LOSSES[mode.name]:
        raise ValueError(f"unknown {mode.name} loss {name!r}; expected one of {', '.join(LOSSES[mode.name])}")
    if class_weights is not None and len(class_weights) != mode.num_classes:
        raise ValueError(f"class_weights needs {mode.num_classes} values for {mode.name}, got {len(class_weights)}")
    dice = TverskyLoss(mode, 0.5, 0.5)
    if name == "bce":
        return BCELoss(mode, pos_weight)
    if name == "ce":
        return CELoss(mode, class_weights)
    if name == "dice":
        return dice
    if name == "bce_dice":
        return SumLoss(BCELoss(mode, pos_weight), dice, dice_weight)
    if name == "ce_dice":
        return SumLoss(CELoss(mode, class_weights), dice, dice_weight)
    if name == "focal":
        return FocalLoss(mode, focal_gamma, focal_alpha, class_weights)
    return TverskyLoss(mode, tversky_alpha, tversky_beta)


def class_weights_from_frequencies(freqs: Sequence[float], scheme: str) -> tuple[float, ...]:
    """Class weights from pixel frequencies (fractions or counts, class 0 = background).

    ``inverse``: w_c = f_0 / f_c; ``inverse_sqrt``: sqrt(f_0 / f_c); ``none``: all 1. Normalised so the
    background weight is 1 (so a curve weight reads as "worth this many background pixels"), then clipped
    to ``MAX_CLASS_WEIGHT`` (50). A class with frequency 0 gets the clip value.
    """
    if scheme not in WEIGHT_SCHEMES:
        raise ValueError(f"unknown class-weight scheme {scheme!r}; expected one of {', '.join(WEIGHT_SCHEMES)}")
    f = [float(x) for x in freqs]
    if not f or f[0] <= 0 or any(x < 0 for x in f):
        raise ValueError(f"frequencies must be non-negative with a positive background share, got {f}")
    if scheme == "none":
        return tuple(1.0 for _ in f)
    power = 1.0 if scheme == "inverse" else 0.5
    return tuple(min(MAX_CLASS_WEIGHT, (f[0] / x) ** power) if x > 0 else MAX_CLASS_WEIGHT for x in f)
