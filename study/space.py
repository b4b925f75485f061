"""Search spaces per task, as Optuna define-by-run functions.

Batch size and the collate are fixed by the run shape, never searched. Loss parameters are suggested only
for the loss that uses them (conditional space), so the tables hold nulls, not meaningless values.
"""

from __future__ import annotations

import warnings

import optuna

from study.config import TaskPreset

LOSSES = {
    "binary": ("bce", "dice", "bce_dice", "focal", "tversky"),
    "multiclass": ("ce", "dice", "ce_dice", "focal", "tversky"),
}
SCHEDULES = ("constant", "cosine", "onecycle")
CLASS_WEIGHTING = ("none", "inverse_sqrt", "inverse")
# Every name a space can suggest; the trials table has one typed `param_<name>` column for each.
PARAM_NAMES = (
    "lr",
    "weight_decay",
    "base_channels",
    "depth",
    "loss",
    "lr_schedule",
    "pos_weight",
    "class_weighting",
    "dice_weight",
    "focal_gamma",
    "focal_alpha",
    "tversky_alpha",
    "tversky_beta",
)


class Space:
    """The define-by-run space of one task; `preset` bounds the network sizes.

    A class, not a closure: Ray pickles the searcher (and this space) into the experiment state.
    """

    def __init__(self, task: str, preset: TaskPreset) -> None:
        self.task = task
        self.preset = preset

    def __call__(self, trial: optuna.Trial) -> dict[str, float] | None:
        task, preset = self.task, self.preset
        trial.suggest_float("lr", 1e-4, 3e-2, log=True)
        trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
        trial.suggest_categorical("base_channels", list(preset.base_channels))
        trial.suggest_int("depth", *preset.depths)
        trial.suggest_categorical("lr_schedule", list(SCHEDULES))
        loss = trial.suggest_categorical("loss", list(LOSSES[task]))
        if loss in ("bce", "bce_dice"):
            trial.suggest_float("pos_weight", 1.0, 100.0, log=True)
        if loss in ("ce", "ce_dice", "focal") and task == "multiclass":
            trial.suggest_categorical("class_weighting", list(CLASS_WEIGHTING))
        if loss in ("bce_dice", "ce_dice"):
            trial.suggest_categorical("dice_weight", [0.5, 1.0, 2.0])
        if loss == "focal":
            trial.suggest_categorical("focal_gamma", [1.0, 2.0, 3.0])
            if task == "binary":
                trial.suggest_categorical("focal_alpha", [0.25, 0.5, 0.75])
        if loss == "tversky":
            alpha = trial.suggest_categorical("tversky_alpha", [0.2, 0.3])
            return {"tversky_beta": round(1.0 - alpha, 6)}  # a constant that rides along in the config
        return None


def sampler(seed: int) -> optuna.samplers.TPESampler:
    """Seeded multivariate TPE; constant liar so parallel trials do not all sample the same region."""
    with warnings.catch_warnings():  # `group` is marked experimental; it is what conditional spaces need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
