"""Metric names and their optimisation modes, defined once.

Imported by the LightningModule (logging), the study (TuneConfig, CheckpointConfig, ``--metric``) and the
results tables (columns, queries). This module imports nothing heavy so ``results`` stays torch-free.
"""

from __future__ import annotations

from typing import Literal

from datamodules.labels import MAX_CLASSES

Mode = Literal["min", "max"]

# Validation metrics, logged once per epoch by the Segmenter (docs/metrics.md says how each is computed).
# `_fg` = mean over curve classes; "track heights" = distances divided by the height of the curve's track.
VAL_METRICS: dict[str, Mode] = {
    "val_loss": "min",
    "val_iou_fg": "max",
    "val_dice_fg": "max",
    "val_miou_all": "max",  # mean IoU over every class, background included (VeerNet's summary)
    "val_f1_tol2": "max",
    "val_curve_mae": "min",  # column-wise chamfer, both sides (missed curve and false curve ink), track heights
    "val_curve_coverage": "max",  # fraction of the columns where a curve is visible that the prediction reaches
    "val_r2_300": "max",  # R^2 of each curve resampled to 300 points (the published protocol), mean over classes
    "val_mae_300": "min",  # MAE of the same, in min-max normalised value units, mean over classes
}
# Per class, for every class of the task with the most classes (class 0 is background; curves from 1).
PER_CLASS_METRICS: dict[str, Mode] = {
    **{f"val_{kind}_c{c}": "max" for kind in ("iou", "dice") for c in range(MAX_CLASSES)},
    **{f"val_r2_300_c{c}": "max" for c in range(1, MAX_CLASSES)},
    **{f"val_mae_300_c{c}": "min" for c in range(1, MAX_CLASSES)},
}
TRAIN_METRICS: dict[str, Mode] = {"train_loss": "min"}

# The second validation set (``study.run --val-data``: real scans, typically): every validation metric again, on
# its rasters, under its own prefix (``val2_dice_fg`` beside ``val_dice_fg``).
VAL_PREFIX, VAL2_PREFIX = "val_", "val2_"


def second_set(name: str) -> str:
    """The second validation set's name of a validation metric: ``val_dice_fg`` -> ``val2_dice_fg``."""
    if not name.startswith(VAL_PREFIX):
        raise KeyError(f"{name!r} is not a validation metric")
    return VAL2_PREFIX + name[len(VAL_PREFIX) :]


def first_set(name: str) -> str:
    """The first validation set's name of a metric of either set: ``val2_dice_fg`` -> ``val_dice_fg``."""
    return VAL_PREFIX + name[len(VAL2_PREFIX) :] if name.startswith(VAL2_PREFIX) else name


VAL2_METRICS: dict[str, Mode] = {second_set(name): mode for name, mode in VAL_METRICS.items()}
VAL2_PER_CLASS_METRICS: dict[str, Mode] = {second_set(name): mode for name, mode in PER_CLASS_METRICS.items()}
# The metrics with a best_<metric> column in the trials table: both sets' summary metrics.
BEST_METRICS: dict[str, Mode] = {**VAL_METRICS, **VAL2_METRICS}

METRICS: dict[str, Mode] = {
    **TRAIN_METRICS,
    **VAL_METRICS,
    **PER_CLASS_METRICS,
    **VAL2_METRICS,
    **VAL2_PER_CLASS_METRICS,
}
DEFAULT_OBJECTIVE = "val_dice_fg"
# Objectives a study may select with --metric: validation metrics only (train loss is not a model-selection score);
# a second-set one needs --val-data.
OBJECTIVES: dict[str, Mode] = {**VAL_METRICS, **PER_CLASS_METRICS, **VAL2_METRICS, **VAL2_PER_CLASS_METRICS}


def mode_of(name: str) -> Mode:
    """The optimisation mode of a metric name; KeyError names the allowed ones."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}") from None
