"""Write golden tables from deterministic fabricated records, at the current schema version.

    python tests/assets/make_golden.py            # writes tests/assets/v<MAJOR.MINOR>/{trials,epochs}.parquet

``v1`` holds the files of the first release (schema 1, read as 1.0); they must stay readable and resumable by
the current code (tests/results/test_evolution.py). When the schema changes, bump SCHEMA_VERSION in
results/schema.py and run this script: it writes a new directory and never overwrites an older one.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from results.schema import SCHEMA_VERSION
from results.tables import StudyTables

STUDY = "golden"
OBJECTIVE = "val_dice_fg"
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
BUDGET = 6
# The hyperparameter columns of the golden study: the trial record of the first release, frozen here.
PARAM_TYPES = {
    "lr": float,
    "weight_decay": float,
    "base_channels": int,
    "depth": int,
    "loss": str,
    "lr_schedule": str,
    "pos_weight": float,
    "class_weighting": str,
    "dice_weight": float,
    "focal_gamma": float,
    "focal_alpha": float,
    "tversky_alpha": float,
    "tversky_beta": float,
}

# trial_id: (task, status, epochs run, quality, params)
TRIALS: dict[str, tuple[str, str, int, float, dict]] = {
    "b0": ("binary", "completed", 6, 0.80, {"lr": 1e-3, "depth": 4, "base_channels": 16, "loss": "bce"}),
    "b1": ("binary", "stopped_early", 3, 0.70, {"lr": 3e-2, "depth": 3, "loss": "bce", "pos_weight": 4.0}),
    "b2": ("binary", "error", 1, 0.99, {"lr": 1.0, "depth": 5, "loss": "dice"}),
    "b3": ("binary", "running", 2, 0.95, {"lr": 2e-3, "depth": 4, "loss": "focal", "focal_gamma": 2.0}),
    "m0": (
        "multiclass",
        "completed",
        6,
        0.60,
        {"lr": 1e-3, "depth": 4, "loss": "ce", "class_weighting": "inv"},
    ),
    "m1": ("multiclass", "stopped_early", 2, 0.75, {"lr": 5e-4, "depth": 5, "loss": "tversky_ce"}),
    "m2": ("multiclass", "completed", 6, 0.65, {"lr": 1e-4, "depth": 3, "loss": "ce", "dice_weight": 0.5}),
}

# trial_id: (the node of each run, the reason of each restart); from schema 1.3. Other trials ran once on node-1.
RUNS: dict[str, tuple[list[str | None], list[str]]] = {
    "b0": (["node-0", "node-1"], ["node-lost"]),  # moved to node-1 after its node was lost
    "m2": (["node-1", None, "node-1"], ["worker-died", "resumed"]),  # a run that reported nothing, then --resume
}


def epoch_values(task: str, quality: float, epoch: int) -> dict[str, float | datetime]:
    """Deterministic metric values: dice rises towards ``quality``, losses fall."""
    dice = quality * (1 - 0.5**epoch)
    values: dict[str, float | datetime] = {
        "train_loss": 1.0 / epoch,
        "val_loss": 1.2 / epoch + (0.05 if epoch == 6 else 0.0),  # min at epoch 5 for 6-epoch trials
        "val_iou_fg": dice * 0.8,
        "val_dice_fg": dice,
        "val_f1_tol2": dice * 0.9,
        "val_curve_mae": 0.1 / epoch,
        "val_curve_coverage": 0.5 + 0.05 * epoch,
        "val_miou_all": 0.5 + dice * 0.4,  # written from schema 1.1 on
        "val_r2_300": 0.9 + 0.01 * epoch,
        "val_mae_300": 0.05 / epoch,
        "val_r2_300_c1": 0.9 + 0.01 * epoch,
        "val_mae_300_c1": 0.05 / epoch,
        "val_iou_c0": 0.99,
        "val_dice_c0": 0.995,
        "val_iou_c1": dice * 0.8,
        "val_dice_c1": dice,
        "lr": 1e-3,
        "epoch_seconds": 10.0 + epoch,
        "images_per_second": 100.0,
        "pad_fraction": 0.125,
        "timestamp": T0 + timedelta(minutes=epoch),
        "ray_own_key": 42.0,  # ignored
    }
    if task == "multiclass":
        values["val_iou_c2"] = dice * 0.7
        values["val_dice_c2"] = dice * 0.85
        values["val_r2_300_c2"] = 0.85 + 0.01 * epoch
        values["val_mae_300_c2"] = 0.08 / epoch
        values["compile_seconds"] = 40.0 if epoch == 1 else 0.5  # the multiclass trials compiled (from 1.1)
        values["graphs_compiled"] = 3.0 if epoch == 1 else 0.0
        # a second validation set (from 1.2): the gap from the first set's values
        values["val2_loss"] = 1.5 / epoch
        values["val2_dice_fg"] = dice * 0.7
        values["val2_curve_mae"] = 0.2 / epoch
        values["val2_dice_c2"] = dice * 0.6
    return values


def populate(tables: StudyTables) -> None:
    for i, (trial_id, (task, status, n_epochs, quality, params)) in enumerate(TRIALS.items()):
        started = T0 + timedelta(hours=i)
        nodes, reasons = RUNS.get(trial_id, (["node-1"], []))
        for epoch in range(1, n_epochs + 1):
            tables.record_epoch(trial_id, task, epoch, epoch_values(task, quality, epoch))
        tables.record_trial(
            trial_id,
            task,
            status=status,
            params=params,
            epoch_budget=BUDGET,
            devices=0.5,
            started_at=started,
            finished_at=None if status == "running" else started + timedelta(seconds=100 * n_epochs),
            node="node-1",  # the last node of every trial
            checkpoint_path=None if status == "error" else f"/ckpt/{trial_id}/best.ckpt",
            error="RuntimeError: loss is NaN" if status == "error" else None,
            error_file=f"/logs/{trial_id}/error.txt" if status == "error" else None,
            nodes=nodes,
            restart_reasons=reasons,
        )


def write(tables_dir: Path) -> StudyTables:
    tables = StudyTables(tables_dir, STUDY, OBJECTIVE, PARAM_TYPES)
    populate(tables)
    return tables


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / f"v{SCHEMA_VERSION}"
    if out.exists():
        sys.exit(f"{out} exists: golden files of a released version are never rewritten; bump SCHEMA_VERSION")
    write(out)
