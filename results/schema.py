"""Explicit pyarrow schemas of the two study tables (DESIGN.md section 6).

Every column has one pinned arrow type; nothing is inferred from the data. The schema version is stored in the
schema metadata of every written file under ``SCHEMA_VERSION_KEY`` and as the ``schema_version`` column of the
trials table. Bump ``SCHEMA_VERSION`` (and add a golden file under ``tests/assets/v<N>``) on any change.
"""

from __future__ import annotations

import pyarrow as pa

from models.metric_names import METRICS, VAL_METRICS

SCHEMA_VERSION = 1
SCHEMA_VERSION_KEY = b"welllog_study.schema_version"

STATUSES = ("completed", "stopped_early", "error", "running")
# Statuses of trials whose metrics are meaningful for model selection.
FINISHED_STATUSES = ("completed", "stopped_early")

TIMESTAMP = pa.timestamp("us", tz="UTC")

# Hyperparameters, each its own typed column `param_<name>`; null where a task or loss doesn't use it.
PARAM_COLUMNS: dict[str, pa.DataType] = {
    "lr": pa.float64(),
    "weight_decay": pa.float64(),
    "base_channels": pa.int64(),
    "depth": pa.int64(),
    "loss": pa.string(),
    "lr_schedule": pa.string(),
    "pos_weight": pa.float64(),
    "class_weighting": pa.string(),
    "dice_weight": pa.float64(),
    "focal_gamma": pa.float64(),
    "focal_alpha": pa.float64(),
    "tversky_alpha": pa.float64(),
    "tversky_beta": pa.float64(),
}
PARAM_PREFIX = "param_"
BEST_PREFIX = "best_"

# Per-epoch measurements that are not metrics (see EPOCHS_SCHEMA).
EPOCH_EXTRAS = ("lr", "epoch_seconds", "images_per_second", "pad_fraction")

_METADATA = {SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode()}
_KEYS = [
    pa.field("study", pa.string(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("trial_id", pa.string(), nullable=False),
]

EPOCHS_SCHEMA = pa.schema(
    [
        *_KEYS,
        pa.field("epoch", pa.int32(), nullable=False),  # 1-based
        *(pa.field(name, pa.float64()) for name in METRICS),  # null when not logged (binary has no class 2)
        *(pa.field(name, pa.float64()) for name in EPOCH_EXTRAS),
        pa.field("timestamp", TIMESTAMP),
    ],
    metadata=_METADATA,
)

TRIALS_SCHEMA = pa.schema(
    [
        *_KEYS,
        pa.field("status", pa.string(), nullable=False),  # one of STATUSES
        pa.field("error", pa.string()),
        pa.field("error_file", pa.string()),
        *(pa.field(PARAM_PREFIX + name, typ) for name, typ in PARAM_COLUMNS.items()),
        pa.field("epochs_completed", pa.int32(), nullable=False),
        pa.field("epoch_budget", pa.int32(), nullable=False),
        pa.field("best_epoch", pa.int32()),  # epoch of objective_best; null before the first epoch
        pa.field("objective", pa.string(), nullable=False),
        pa.field("objective_mode", pa.string(), nullable=False),
        pa.field("objective_best", pa.float64()),
        pa.field("objective_last", pa.float64()),
        *(pa.field(BEST_PREFIX + name, pa.float64()) for name in VAL_METRICS),  # each by its own mode
        pa.field("wall_seconds", pa.float64()),
        pa.field("devices", pa.float64()),
        pa.field("device_seconds", pa.float64()),
        pa.field("seconds_saved", pa.float64()),  # stopped_early only; 0 otherwise
        pa.field("started_at", TIMESTAMP),
        pa.field("finished_at", TIMESTAMP),
        pa.field("node", pa.string()),
        pa.field("checkpoint_path", pa.string()),
        pa.field("schema_version", pa.int32(), nullable=False),
    ],
    metadata=_METADATA,
)

TRIALS_FILE = "trials.parquet"
EPOCHS_FILE = "epochs.parquet"
TABLES_SUBDIR = "tables"
SCHEMAS: dict[str, pa.Schema] = {TRIALS_FILE: TRIALS_SCHEMA, EPOCHS_FILE: EPOCHS_SCHEMA}
