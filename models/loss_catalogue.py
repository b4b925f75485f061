"""The loss catalogue: every loss of every task by name, with its typed parameters. Torch-free to import.

The one home of these names: the search space, the trial's parameter record and the trials table's ``param_*``
columns are all derived from it, and the driver reads it without torch. ``models.losses`` builds each loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from datamodules.labels import task_spec
from models.hparam import HParam

ParamValue = float | str

WEIGHT_SCHEMES = ("none", "inverse_sqrt", "inverse")  # class weights from the measured pixel frequencies

# A loss parameter is declared once here (its name is shared by every loss that takes it).
POS_WEIGHT = HParam("pos_weight", float, 1.0)  # binary BCE: weight of the curve (positive) pixels
CLASS_WEIGHTING = HParam("class_weighting", str, "none")  # one of WEIGHT_SCHEMES, from measured frequencies
DICE_WEIGHT = HParam("dice_weight", float, 1.0)  # weight of the Dice term in a sum
FOCAL_GAMMA = HParam("focal_gamma", float, 2.0)
FOCAL_ALPHA = HParam("focal_alpha", float, 0.25)  # binary focal: weight of the positives
TVERSKY_ALPHA = HParam("tversky_alpha", float, 0.3)  # weight of false positives
TVERSKY_BETA = HParam("tversky_beta", float, 0.7)  # weight of false negatives
TVERSKY_GAMMA = HParam("tversky_gamma", float, 0.75)  # focal Tversky: exponent of (1 - Tversky index)


@dataclass(frozen=True)
class LossSpec:
    """One loss: its name and the parameters it takes (``models.losses`` says how each spec is built)."""

    name: str
    params: tuple[HParam, ...]


# A loss is declared once here; a task lists the ones it has (the same spec where both tasks share a loss).
BCE = LossSpec("bce", (POS_WEIGHT,))
CE = LossSpec("ce", (CLASS_WEIGHTING,))
DICE = LossSpec("dice", ())
BCE_DICE = LossSpec("bce_dice", (POS_WEIGHT, DICE_WEIGHT))
CE_DICE = LossSpec("ce_dice", (CLASS_WEIGHTING, DICE_WEIGHT))
BINARY_FOCAL = LossSpec("focal", (FOCAL_GAMMA, FOCAL_ALPHA))
MULTICLASS_FOCAL = LossSpec("focal", (FOCAL_GAMMA, CLASS_WEIGHTING))
TVERSKY = LossSpec("tversky", (TVERSKY_ALPHA, TVERSKY_BETA))
FOCAL_TVERSKY = LossSpec("focal_tversky", (TVERSKY_ALPHA, TVERSKY_BETA, TVERSKY_GAMMA))

LOSSES: dict[str, dict[str, LossSpec]] = {
    "binary": {spec.name: spec for spec in (BCE, DICE, BCE_DICE, BINARY_FOCAL, TVERSKY, FOCAL_TVERSKY)},
    "multiclass": {spec.name: spec for spec in (CE, DICE, CE_DICE, MULTICLASS_FOCAL, TVERSKY, FOCAL_TVERSKY)},
}
DEFAULT_LOSS: dict[str, str] = {"binary": BCE_DICE.name, "multiclass": CE_DICE.name}


def loss_params() -> dict[str, HParam]:
    """Every loss parameter of every task by name; a name means the same parameter wherever it appears."""
    out: dict[str, HParam] = {}
    for specs in LOSSES.values():
        for spec in specs.values():
            for p in spec.params:
                if out.setdefault(p.name, p) != p:
                    raise TypeError(f"loss parameter {p.name!r} is declared twice with different types or defaults")
    return out


def loss_spec(task: str, name: str) -> LossSpec:
    """The spec of loss ``name`` for ``task``; ValueError lists the losses the task has (or the tasks there are)."""
    task = task_spec(task).name
    specs = LOSSES[task]
    if name not in specs:
        raise ValueError(f"unknown {task} loss {name!r}; expected one of {', '.join(specs)}")
    return specs[name]
