"""The parameter importances a study keeps, and the domain of each parameter its trials covered.

The study computes each task's importances with Optuna (``study.importance``: PED-ANOVA on the trials table's
typed ``param_<name>`` columns) and keeps them in ``STUDY/tables/importance.parquet``, one row per (task,
parameter), rewritten whenever a trial finishes and when the study ends. This module names that table and reads
it back; it imports neither Optuna nor Ray, so the report reads a study's importances with pandas alone. A study
written before the table existed has none: ``python -m study.importance STUDY_DIR`` computes and saves them
(``SAVE_COMMAND``). Schema in ``docs/schema.md`` ("importance.parquet").

``domains`` is the range of every parameter that varied among a task's trials, shared by the computation (its
Optuna distributions) and the report (a log axis on its slice plots): strings are categorical, integers an
integer range, and a positive float that spans a factor of ``LOG_SPAN`` or more is on a log scale (learning
rate, weight decay, ``pos_weight``), as the search space samples them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from results.query import table_location
from results.schema import FINISHED_STATUSES, PARAM_PREFIX, TIMESTAMP
from results.store import LocationError, exists, is_uri, read_bytes, shown

IMPORTANCE_FILE = "importance.parquet"
SAVE_COMMAND = "python -m study.importance"  # computes and saves a study's importances (study/importance.py)
LOG_SPAN = 10.0  # a positive float parameter whose max / min reaches this is on a log scale

_FIELDS: list[pa.Field[Any]] = [
    pa.field("task", pa.string(), nullable=False),
    pa.field("param", pa.string(), nullable=False),  # the hyperparameter, without the param_ prefix
    pa.field("importance", pa.float64(), nullable=False),  # its share; a task's shares sum to 1
    pa.field("trials", pa.int32(), nullable=False),  # the task's finished trials it was computed from
    pa.field("computed_at", TIMESTAMP, nullable=False),
]
IMPORTANCE_SCHEMA = pa.schema(_FIELDS)


@dataclass(frozen=True)
class Domain:
    """The values a parameter took: ``choices`` for a categorical one, else ``low``..``high`` (``log`` scale)."""

    kind: Literal["categorical", "int", "float"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[str, ...] = ()


def finished(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials an importance counts: completed or stopped early, with a finite ``objective_best``. A trial
    stopped by ASHA counts with the best value it reached before the cut, which is what it tells about its
    region of the space."""
    done = trials["status"].astype(str).isin(FINISHED_STATUSES)
    best = trials["objective_best"].astype(float)
    return trials[done & best.map(math.isfinite).fillna(False).astype(bool)]


def domains(trials: pd.DataFrame) -> dict[str, Domain]:
    """The domain of every ``param_*`` column that took two or more values, keyed by parameter name."""
    out: dict[str, Domain] = {}
    for column in trials.columns:
        if not column.startswith(PARAM_PREFIX):
            continue
        values = trials[column].dropna()
        if values.nunique() < 2:
            continue
        name = column[len(PARAM_PREFIX) :]
        if pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
            out[name] = Domain("categorical", choices=tuple(sorted(str(v) for v in values.unique())))
        elif pd.api.types.is_integer_dtype(values.dtype):
            out[name] = Domain("int", int(values.min()), int(values.max()))
        else:
            low, high = float(values.min()), float(values.max())
            out[name] = Domain("float", low, high, log=low > 0 and high / low >= LOG_SPAN)
    return out


def location(study_dir: Path | str) -> Path | str:
    """Where the study's importances are: a path, or a URI for a study in object storage."""
    return table_location(study_dir, IMPORTANCE_FILE)


def load(study_dir: Path | str) -> pd.DataFrame | None:
    """The study's importances, each task's most important parameter first; None when the study has none
    (written before they were kept); ValueError naming the file for a damaged one."""
    where = location(study_dir)
    try:
        if not exists(str(where)):
            return None
        source = pa.BufferReader(read_bytes(str(where))) if is_uri(where) else where
        table = pq.read_table(source, schema=IMPORTANCE_SCHEMA, page_checksum_verification=True)
    except (OSError, LocationError, pa.ArrowException) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{shown(where)}: not an importance table ({reason})") from None
    frame = table.to_pandas()
    return frame.sort_values(["task", "importance", "param"], ascending=[True, False, True], ignore_index=True)
