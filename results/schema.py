"""Explicit pyarrow schemas of the two study tables, their version, and the rules by which they evolve.

Every column has one pinned arrow type; the version ``MAJOR.MINOR`` is stored in each file's schema metadata.
docs/schema.md lists every column with its meaning and gives the evolution rules (additive minor versions,
``MIGRATIONS`` for majors, newer files refused, open ``param_<name>`` columns).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import pyarrow as pa

from models.metric_names import BEST_METRICS, METRICS


class SchemaVersion(NamedTuple):
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @classmethod
    def parse(cls, text: str) -> SchemaVersion:
        """``"1"`` (the first release) is 1.0; ValueError for anything that is not ``N`` or ``N.M``."""
        parts = text.strip().split(".")
        if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
            raise ValueError(f"not a schema version: {text!r}")
        return cls(int(parts[0]), int(parts[1]) if len(parts) == 2 else 0)


# 1.0: the first release. 1.1: val_miou_all, val_r2_300, val_mae_300 (and per curve class), the binary
# curve error with its precision side (same column); compile_seconds and graphs_compiled per trial; the
# status "interrupted". 1.2: the second validation set (``--val-data``): every val_* column again as val2_*, and
# best_val2_* per trial. 1.3: every node a trial ran on (``nodes``) and its restarts (``restarts``,
# ``restart_reasons``).
SCHEMA_VERSION = SchemaVersion(1, 3)
SCHEMA_VERSION_KEY = b"welllog_study.schema_version"

# major N -> a function turning a table of major N into one of major N + 1: (table, file name) -> table.
MIGRATIONS: dict[int, Callable[[pa.Table, str], pa.Table]] = {}

# "interrupted": the trial was unfinished when its driver stopped (a signal, a storage failure); --resume
# continues it. New in 1.1 (a new value of the status column; files written before it never hold it).
STATUSES = ("completed", "stopped_early", "error", "running", "interrupted")
# Why a trial was started again from its checkpoint (the ``restart_reasons`` column), each with what happened in
# the words of the closing lines. New in 1.3. Ray restarts a trial after a failure (FailureConfig max_failures):
# its node left the cluster (never counted against the trial's retries), its worker process died on a node that
# stayed (killed, out of memory: counted), or it raised (counted). ``--resume`` continues an interrupted or
# errored trial after its driver stopped.
NODE_LOST = "node-lost"
WORKER_DIED = "worker-died"
RETRIED = "error"
RESUMED = "resumed"
RESTART_REASONS = {
    NODE_LOST: "the node was lost",
    WORKER_DIED: "its worker process died",
    RETRIED: "it raised an error",
    RESUMED: "the study was resumed",
}
# Statuses of trials whose metrics are meaningful for model selection.
FINISHED_STATUSES = ("completed", "stopped_early")
# Statuses a trial ends in (a planned trial in one of these needs no more work).
FINAL_STATUSES = (*FINISHED_STATUSES, "error")

TIMESTAMP = pa.timestamp("us", tz="UTC")
PARAM_PREFIX = "param_"
BEST_PREFIX = "best_"
# Arrow type of a hyperparameter column, by the Python type of the parameter.
PARAM_ARROW_TYPES: dict[type, pa.DataType] = {float: pa.float64(), int: pa.int64(), str: pa.string()}

# Per-epoch measurements that are not metrics (see EPOCHS_SCHEMA). The compile figures are what torch.compile
# spent in that epoch (a resumed trial compiles again in its first epoch); the trials table sums them.
EPOCH_EXTRAS = ("lr", "epoch_seconds", "images_per_second", "pad_fraction", "compile_seconds", "graphs_compiled")

_KEYS: list[pa.Field[Any]] = [
    pa.field("study", pa.string(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("trial_id", pa.string(), nullable=False),
]


def _metadata() -> dict[bytes | str, bytes | str]:
    return {SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode()}


EPOCHS_SCHEMA = pa.schema(
    [
        *_KEYS,
        pa.field("epoch", pa.int32(), nullable=False),  # 1-based
        *(pa.field(name, pa.float64()) for name in METRICS),  # null when not logged (binary has no class 2)
        *(pa.field(name, pa.float64()) for name in EPOCH_EXTRAS),
        pa.field("timestamp", TIMESTAMP),
    ],
    metadata=_metadata(),
)

# The trials table without its hyperparameter columns, which go after ``error_file``.
_TRIALS_HEAD: list[pa.Field[Any]] = [
    *_KEYS,
    pa.field("status", pa.string(), nullable=False),  # one of STATUSES
    pa.field("error", pa.string()),
    pa.field("error_file", pa.string()),
]
_TRIALS_TAIL: list[pa.Field[Any]] = [
    pa.field("epochs_completed", pa.int32(), nullable=False),
    pa.field("epoch_budget", pa.int32(), nullable=False),
    pa.field("best_epoch", pa.int32()),  # epoch of objective_best; null before the first epoch
    pa.field("objective", pa.string(), nullable=False),
    pa.field("objective_mode", pa.string(), nullable=False),
    pa.field("objective_best", pa.float64()),
    pa.field("objective_last", pa.float64()),
    *(pa.field(BEST_PREFIX + name, pa.float64()) for name in BEST_METRICS),  # each by its own mode
    pa.field("wall_seconds", pa.float64()),
    pa.field("devices", pa.float64()),
    pa.field("device_seconds", pa.float64()),
    pa.field("seconds_saved", pa.float64()),  # stopped_early only; 0 otherwise
    pa.field("compile_seconds", pa.float64()),  # torch.compile time over the trial's epochs; null when eager
    pa.field("graphs_compiled", pa.int32()),  # graphs torch.compile built over the trial's epochs
    pa.field("started_at", TIMESTAMP),
    pa.field("finished_at", TIMESTAMP),
    pa.field("node", pa.string()),  # the last node it ran on
    pa.field("nodes", pa.list_(pa.string())),  # the node of each run, in order (null: not known); from 1.3
    pa.field("restarts", pa.int32()),  # runs after the first; from 1.3
    pa.field("restart_reasons", pa.list_(pa.string())),  # one of RESTART_REASONS per restart, in order; from 1.3
    pa.field("checkpoint_path", pa.string()),
    pa.field("schema_version", pa.int32(), nullable=False),  # the major version
]
# The fixed columns of the trials table (no hyperparameters), current version.
TRIALS_FIXED_SCHEMA = pa.schema([*_TRIALS_HEAD, *_TRIALS_TAIL], metadata=_metadata())


def param_columns(param_types: Mapping[str, type]) -> dict[str, pa.DataType]:
    """``param_<name>`` -> arrow type, from hyperparameter names and their Python types."""
    out = {}
    for name, typ in param_types.items():
        if typ not in PARAM_ARROW_TYPES:
            raise TypeError(f"hyperparameter {name!r} has type {typ!r}; tables hold {list(PARAM_ARROW_TYPES)}")
        out[PARAM_PREFIX + name] = PARAM_ARROW_TYPES[typ]
    return out


def trials_schema(params: Mapping[str, pa.DataType]) -> pa.Schema:
    """The trials table with the given ``param_<name>`` columns (arrow types), current version."""
    fields = [pa.field(name, typ) for name, typ in params.items()]
    return pa.schema([*_TRIALS_HEAD, *fields, *_TRIALS_TAIL], metadata=_metadata())


def is_param_column(field: pa.Field[Any]) -> bool:
    return field.name.startswith(PARAM_PREFIX) and any(field.type.equals(t) for t in PARAM_ARROW_TYPES.values())


TRIALS_FILE = "trials.parquet"
EPOCHS_FILE = "epochs.parquet"
TABLES_SUBDIR = "tables"
