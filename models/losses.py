"""Mode-keyed segmentation losses. Every loss ignores ``IGNORE_INDEX`` pixels and computes in float32.

All losses take logits (B, C, H, W) (C = 1 binary, 3 multiclass) and targets (B, H, W) int64, and reduce
over the valid pixels of the whole batch, so padding a batch (labels 255) never changes the value.
Region losses (Dice, Tversky) sum their counts over the batch, then average over curve classes.
The losses' names and parameters are declared in ``models.loss_catalogue`` (torch-free); ``BUILDERS`` builds each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from datamodules.labels import IGNORE_INDEX
from models.loss_catalogue import (
    BCE,
    BCE_DICE,
    BINARY_FOCAL,
    CE,
    CE_DICE,
    CLASS_WEIGHTING,
    DICE,
    DICE_WEIGHT,
    FOCAL_ALPHA,
    FOCAL_GAMMA,
    FOCAL_TVERSKY,
    LOSSES,
    MULTICLASS_FOCAL,
    POS_WEIGHT,
    TVERSKY,
    TVERSKY_ALPHA,
    TVERSKY_BETA,
    TVERSKY_GAMMA,
    WEIGHT_SCHEMES,
    LossSpec,
    ParamValue,
    loss_spec,
)
from models.modes import TaskMode, mode_for

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
    pos_weight: torch.Tensor  # a buffer (register_buffer), not a parameter

    def __init__(self, mode: TaskMode, pos_weight: float = 1.0) -> None:
        super().__init__(mode)
        self.register_buffer("pos_weight", torch.tensor(float(pos_weight)), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = (target != IGNORE_INDEX).float()  # (B, H, W)
        t = (target == 1).float()  # (B, H, W)
        bce = F.binary_cross_entropy_with_logits(logits[:, 0].float(), t, pos_weight=self.pos_weight, reduction="none")
        return _mean_valid(bce, valid)


class CELoss(_ModeLoss):
    class_weights: torch.Tensor  # a buffer (register_buffer), not a parameter

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

    class_weights: torch.Tensor  # a buffer (register_buffer), not a parameter

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
    """mean over curve classes of (1 - TI) ** gamma, TI = TP / (TP + alpha FP + beta FN), counts summed over
    the batch.

    alpha = beta = 0.5, gamma = 1 is soft Dice; gamma < 1 is the focal Tversky loss (Abraham and Khan 2019),
    which keeps pushing on classes that are already mostly right.
    """

    def __init__(self, mode: TaskMode, alpha: float = 0.3, beta: float = 0.7, gamma: float = 1.0) -> None:
        super().__init__(mode)
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.curve = list(mode.curve_classes)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs, onehot, valid = self._prepare(logits, target)
        p = probs[:, self.curve] * valid  # (B, Kc, H, W)
        t = onehot[:, self.curve] * valid  # (B, Kc, H, W)
        tp = (p * t).sum((0, 2, 3))  # (Kc,)
        fp = (p * (1.0 - t)).sum((0, 2, 3))
        fn = ((1.0 - p) * t).sum((0, 2, 3))
        score = (tp + _EPS) / (tp + self.alpha * fp + self.beta * fn + _EPS)
        return ((1.0 - score).clamp_min(0.0) ** self.gamma).mean()


class SumLoss(nn.Module):
    """``first + weight * second``."""

    def __init__(self, first: nn.Module, second: nn.Module, weight: float) -> None:
        super().__init__()
        self.first, self.second, self.weight = first, second, weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor = self.first(logits, target) + self.weight * self.second(logits, target)
        return total


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


# ---------------------------------------------------------------------------------------------------------------
# How each loss of the catalogue (models/loss_catalogue.py: the names and parameters) is built.


class _Context:
    """What a builder gets: the mode, the resolved parameter values and the measured class frequencies."""

    def __init__(self, mode: TaskMode, params: Mapping[str, ParamValue], frequencies: Sequence[float] | None):
        self.mode, self.params, self.frequencies = mode, params, frequencies

    def __getitem__(self, name: str) -> ParamValue:
        return self.params[name]

    def class_weights(self) -> tuple[float, ...] | None:
        scheme = str(self.params[CLASS_WEIGHTING.name])
        if scheme not in WEIGHT_SCHEMES:
            raise ValueError(f"unknown class_weighting {scheme!r}; expected one of {', '.join(WEIGHT_SCHEMES)}")
        if scheme == "none":
            return None
        if self.frequencies is None:
            raise ValueError(f"class_weighting {scheme!r} needs the measured class frequencies; pass them")
        return class_weights_from_frequencies(self.frequencies, scheme)


def _dice(c: _Context) -> nn.Module:
    return TverskyLoss(c.mode, 0.5, 0.5)


def _tversky(c: _Context) -> nn.Module:
    return TverskyLoss(c.mode, float(c[TVERSKY_ALPHA.name]), float(c[TVERSKY_BETA.name]))


def _bce(c: _Context) -> nn.Module:
    return BCELoss(c.mode, float(c[POS_WEIGHT.name]))


def _focal_tversky(c: _Context) -> nn.Module:
    alpha, beta, gamma = (float(c[p.name]) for p in (TVERSKY_ALPHA, TVERSKY_BETA, TVERSKY_GAMMA))
    return TverskyLoss(c.mode, alpha, beta, gamma)


def _ce(c: _Context) -> nn.Module:
    return CELoss(c.mode, c.class_weights())


BUILDERS: dict[LossSpec, Callable[[_Context], nn.Module]] = {
    BCE: _bce,
    CE: _ce,
    DICE: _dice,
    BCE_DICE: lambda c: SumLoss(_bce(c), _dice(c), float(c[DICE_WEIGHT.name])),
    CE_DICE: lambda c: SumLoss(_ce(c), _dice(c), float(c[DICE_WEIGHT.name])),
    BINARY_FOCAL: lambda c: FocalLoss(c.mode, float(c[FOCAL_GAMMA.name]), alpha=float(c[FOCAL_ALPHA.name])),
    MULTICLASS_FOCAL: lambda c: FocalLoss(c.mode, float(c[FOCAL_GAMMA.name]), class_weights=c.class_weights()),
    TVERSKY: _tversky,
    FOCAL_TVERSKY: _focal_tversky,
}
_UNBUILT = sorted(f"{task} {name}" for task, specs in LOSSES.items() for name, s in specs.items() if s not in BUILDERS)
if _UNBUILT:
    raise TypeError(f"losses of the catalogue with no builder: {', '.join(_UNBUILT)}")


def build_loss(
    task: str | TaskMode,
    name: str,
    params: Mapping[str, ParamValue] | None = None,
    *,
    class_frequencies: Sequence[float] | None = None,
) -> nn.Module:
    """The loss ``name`` for ``task``: a module mapping (logits (B, C, H, W), targets (B, H, W)) to a scalar.

    Args:
        params: values of the loss's own parameters (see ``models.loss_catalogue.LOSSES``); missing ones take
            their defaults, a parameter the loss does not take is a ValueError.
        class_frequencies: measured pixel frequencies per class (class 0 first), for ``class_weighting``.
    """
    mode = mode_for(task)
    spec = loss_spec(mode.name, name)
    params = dict(params or {})
    allowed = {p.name: p for p in spec.params}
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        takes = ", ".join(allowed) or "no parameters"
        raise ValueError(f"{mode.name} loss {name!r} takes {takes}; got {', '.join(unknown)}")
    if class_frequencies is not None and len(class_frequencies) != mode.num_classes:
        raise ValueError(
            f"class_frequencies needs {mode.num_classes} values for {mode.name}, got {len(class_frequencies)}"
        )
    resolved = {p.name: p.type(params.get(p.name, p.default)) for p in spec.params}
    return BUILDERS[spec](_Context(mode, resolved, class_frequencies))
