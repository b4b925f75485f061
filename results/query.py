"""Validated loaders and the common questions about a study's tables, one call each.

``study_dir`` is ``<storage>/<study name>``; the tables live in
``<study_dir>/tables/{trials,epochs}.parquet``. Every loader reads with page checksum verification and checks
the file against the pinned schema, so a damaged, truncated, foreign or retyped table raises
:class:`TableError` (naming the file and the reason) instead of returning a partial or silently re-typed
result. A plain ``pandas.read_parquet`` on the same files also works. The columns are described in docs/schema.md.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.metric_names import BEST_METRICS, METRICS, mode_of
from results.schema import (
    BEST_PREFIX,
    EPOCHS_FILE,
    EPOCHS_SCHEMA,
    FINISHED_STATUSES,
    MIGRATIONS,
    PARAM_PREFIX,
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    STATUSES,
    TABLES_SUBDIR,
    TRIALS_FILE,
    SchemaVersion,
    is_param_column,
    trials_schema,
)
from results.store import LocationError, child, is_uri, read_bytes, shown

_FIX = "restore the file from a backup, or delete it to rebuild the study's tables"


class TableError(ValueError):
    """A study table that cannot be trusted: missing, damaged, foreign or of the wrong schema."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path: Path | str = shown(path) if is_uri(path) else Path(path).absolute()
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def tables_dir(study_dir: Path | str) -> Path:
    return Path(study_dir) / TABLES_SUBDIR


def table_location(study_dir: Path | str, name: str) -> Path | str:
    """Where table ``name`` of a study is: a path, or a URI for a study in object storage."""
    if is_uri(study_dir):
        return child(study_dir, TABLES_SUBDIR, name)
    return tables_dir(study_dir) / name


def file_version(path: Path | str, schema: pa.Schema) -> SchemaVersion:
    """The schema version a file declares; TableError for a file that is not ours or is newer than this code."""
    meta = schema.metadata or {}
    if SCHEMA_VERSION_KEY not in meta:
        raise TableError(path, f"not a welllog-study table (no {SCHEMA_VERSION_KEY.decode()} metadata)")
    text = meta[SCHEMA_VERSION_KEY].decode(errors="replace")
    try:
        version = SchemaVersion.parse(text)
    except ValueError:
        raise TableError(path, f"schema version {text!r} is not a version; {_FIX}") from None
    if version > SCHEMA_VERSION:
        raise TableError(
            path, f"schema version {version} is newer than this welllog-study reads ({SCHEMA_VERSION}); upgrade it"
        )
    return version


def expected_schema(name: str, actual: pa.Schema) -> pa.Schema:
    """The current schema of table ``name``; the trials table keeps the hyperparameter columns it has."""
    if name == EPOCHS_FILE:
        return EPOCHS_SCHEMA
    return trials_schema({f.name: f.type for f in actual if f.name.startswith(PARAM_PREFIX)})


def conform(path: Path | str, table: pa.Table, name: str, version: SchemaVersion) -> pa.Table:
    """Check ``table`` (already migrated to the current major) against the current schema and upgrade it.

    Columns added by a later minor version are filled with nulls; anything else that differs (an unknown,
    missing or retyped column) is a TableError.
    """
    actual = table.schema
    expected = expected_schema(name, actual)
    for field in actual:
        if field.name.startswith(PARAM_PREFIX) and not is_param_column(field):
            raise TableError(path, f"hyperparameter column {field.name!r} has type {field.type}")
        index = expected.get_field_index(field.name)
        if index < 0:
            raise TableError(path, f"unknown column {field.name!r}")
        want = expected.field(index).type
        if not field.type.equals(want):
            raise TableError(path, f"column {field.name!r} has type {field.type}, expected {want}")
    for field in expected:
        if actual.get_field_index(field.name) >= 0:
            continue
        if version == SCHEMA_VERSION or not field.nullable:
            raise TableError(path, f"missing column {field.name!r}")
        table = table.append_column(field, pa.nulls(len(table), field.type))
    return table.select(expected.names).replace_schema_metadata(expected.metadata)


def _source(path: Path | str) -> Path | pa.BufferReader:
    """A local table's path, or the bytes of one in object storage; TableError when there is none."""
    if is_uri(path):
        try:
            data = read_bytes(str(path))
        except FileNotFoundError:
            raise TableError(path, "no such table; is this a study written by welllog-study?") from None
        except (OSError, LocationError) as exc:
            raise TableError(path, f"cannot be read ({str(exc).strip().splitlines()[0]})") from None
        if not data:
            raise TableError(path, f"empty file (0 bytes); {_FIX}")
        return pa.BufferReader(data)
    local = Path(path).absolute()
    if not local.is_file():
        raise TableError(local, "no such table; is this a study directory written by welllog-study?")
    if local.stat().st_size == 0:
        raise TableError(local, f"empty file (0 bytes); {_FIX}")
    return local


def read_table(path: Path | str, name: str) -> tuple[pa.Table, SchemaVersion]:
    """Read one whole table (``TRIALS_FILE`` or ``EPOCHS_FILE``) with page checksums verified.

    ``path`` is a file, or an object store URI (``results.store``). Returns the table in the current schema
    (older versions upgraded: migrated across majors, new columns null) and the version the file was written
    in. TableError on any problem, naming the file.
    """
    source = _source(path)
    path = path if is_uri(path) else Path(path).absolute()
    try:
        with pq.ParquetFile(source, page_checksum_verification=True) as pf:
            version = file_version(path, pf.schema_arrow)
            table = pf.read()
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TableError(path, f"damaged or not a Parquet file ({reason}); {_FIX}") from None
    for major in range(version.major, SCHEMA_VERSION.major):
        if major not in MIGRATIONS:
            raise TableError(path, f"schema version {version} has no migration to {major + 1}.0")
        table = MIGRATIONS[major](table, name)
    return conform(path, table, name, version), version


def _types_mapper(typ: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
    # Nullable integers stay integers; strings become pandas string dtype (never object) on pandas 2 and 3.
    if pa.types.is_int32(typ):
        return pd.Int32Dtype()
    if pa.types.is_int64(typ):
        return pd.Int64Dtype()
    if pa.types.is_string(typ):
        return pd.StringDtype()
    if pa.types.is_list(typ):  # a trial's nodes and restart reasons: Python lists per cell, never object
        return pd.ArrowDtype(typ)
    return None


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=_types_mapper)


def _load(study_dir: Path | str, name: str) -> pd.DataFrame:
    table, version = read_table(table_location(study_dir, name), name)
    frame = _to_pandas(table)
    frame.attrs["schema_version"] = str(version)  # the version the file was written in
    return frame


def load_trials(study_dir: Path | str) -> pd.DataFrame:
    """All trial rows, one per trial, in the current schema (docs/schema.md, 'trials.parquet').

    Args:
        study_dir: the study directory, ``<storage>/<study name>``.

    Returns:
        One row per trial. Integer columns are pandas nullable integers, strings the pandas string dtype;
        columns added after the file's version are null. ``.attrs["schema_version"]`` is the version the file
        was written in.

    Raises:
        TableError: the table is missing, empty, damaged, not a welllog-study table, newer than this version, or
            does not match the schema.
    """
    return _load(study_dir, TRIALS_FILE)


def load_epochs(study_dir: Path | str) -> pd.DataFrame:
    """All epoch rows, one per (trial, epoch), in the current schema (docs/schema.md, 'epochs.parquet').

    Args:
        study_dir: the study directory, ``<storage>/<study name>``.

    Returns:
        One row per (trial, epoch), typed as in ``load_trials``; ``.attrs["schema_version"]`` is the version the
        file was written in.

    Raises:
        TableError: the table is missing, empty, damaged, not a welllog-study table, newer than this version, or
            does not match the schema.
    """
    return _load(study_dir, EPOCHS_FILE)


def _objective(trials: pd.DataFrame) -> str | None:
    names = trials["objective"].dropna().unique()
    if len(names) > 1:
        raise ValueError(f"trials have several objectives ({', '.join(names)}); pass metric= explicitly")
    return str(names[0]) if len(names) else None


def best_trials(study_dir: Path | str, metric: str | None = None, n: int = 1) -> pd.DataFrame:
    """The ``n`` best finished trials per task (completed or stopped_early), best first.

    Args:
        study_dir: the study directory, ``<storage>/<study name>``.
        metric: None ranks by the study objective (``objective_best``); a validation metric ranks by its
            ``best_<metric>`` column; any other metric (per-class, train_loss) by its best epoch value.
            Its mode (min/max) comes from ``models.metric_names``.
        n: trials to keep per task.

    Returns:
        The trial rows plus ``rank`` (1 = best), ``metric`` and ``score``, sorted by task then rank (ties
        broken by trial id). Trials without a score are left out; with no finished trial the frame is empty.

    Raises:
        ValueError: ``n`` is below 1, ``metric`` is not a metric of ``models.metric_names``, or ``metric`` is
            None and the trials were run under several objectives.
        TableError: the trials table (or, for a metric ranked from its epoch values, the epochs table) cannot
            be read.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    trials = load_trials(study_dir)
    trials = trials[trials["status"].isin(FINISHED_STATUSES).fillna(False).astype(bool)].copy()
    if metric is None:
        metric = _objective(trials)
        if metric is None:
            return trials.assign(rank=pd.Series(dtype="Int64"), metric=None, score=pd.Series(dtype=float))
        score = trials["objective_best"]
    elif metric in BEST_METRICS:
        score = trials[BEST_PREFIX + metric]
    elif metric in METRICS:
        epochs = load_epochs(study_dir)
        grouped = epochs.groupby("trial_id", observed=True)[metric]
        per_trial = grouped.min() if mode_of(metric) == "min" else grouped.max()
        score = trials["trial_id"].map(per_trial).astype(float)
    else:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    ascending = mode_of(metric) == "min"
    trials["metric"] = pd.Series(metric, index=trials.index, dtype=pd.StringDtype())
    trials["score"] = score.astype(float)
    trials = trials[trials["score"].notna()]
    trials = trials.sort_values(["task", "score", "trial_id"], ascending=[True, ascending, True], kind="stable")
    trials["rank"] = trials.groupby("task", observed=True).cumcount().add(1).astype("Int64")
    return trials[trials["rank"] <= n].reset_index(drop=True)


def learning_curves(study_dir: Path | str, metric: str | None = None) -> dict[str, pd.DataFrame]:
    """One epoch x trial table per task: ``curves[task].plot()`` draws every trial's curve.

    Args:
        metric: a metric column of the epochs table; None uses the study objective (or ``val_loss`` when
            there are no trial rows yet).

    Returns:
        ``{task: DataFrame}`` indexed by ``epoch``, one float column per ``trial_id``; NaN where a trial has
        no value at that epoch (stopped early, or not reached yet). For long form use ``load_epochs``.
    """
    if metric is None:
        try:
            metric = _objective(load_trials(study_dir))
        except TableError as exc:
            if "no such table" not in exc.reason:
                raise
            metric = None
        metric = metric or "val_loss"
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    epochs = load_epochs(study_dir)
    curves: dict[str, pd.DataFrame] = {}
    for task, rows in epochs.groupby("task", observed=True, sort=True):
        wide = rows.pivot(index="epoch", columns="trial_id", values=metric).sort_index().astype(float)
        wide.columns = wide.columns.astype(str)
        wide.columns.name = "trial_id"
        curves[str(task)] = wide
    return curves


def early_stopping_savings(study_dir: Path | str) -> pd.DataFrame:
    """Per task: what early stopping saved.

    Returns:
        Indexed by ``task``: ``trials``, ``stopped_early`` (counts), ``epochs_budget`` (sum of all trials'
        budgets), ``epochs_run``, ``epochs_saved`` (budget minus run, stopped_early trials only),
        ``seconds_saved`` (sum of the trials' ``seconds_saved``) and ``fraction_saved``
        (``epochs_saved / epochs_budget``).
    """
    trials = load_trials(study_dir)
    stopped = (trials["status"] == "stopped_early").fillna(False).astype(bool)
    budget = trials["epoch_budget"].astype("int64")
    done = trials["epochs_completed"].astype("int64")
    frame = pd.DataFrame(
        {
            "task": trials["task"],
            "trials": 1,
            "stopped_early": stopped.astype("int64"),
            "epochs_budget": budget,
            "epochs_run": done,
            "epochs_saved": (budget - done).clip(lower=0).where(stopped, 0),
            "seconds_saved": trials["seconds_saved"].astype(float).fillna(0.0),
        }
    )
    out = frame.groupby("task", observed=True, sort=True).sum()
    out["fraction_saved"] = out["epochs_saved"] / out["epochs_budget"].where(out["epochs_budget"] > 0)
    out.index = out.index.astype(pd.StringDtype())
    return out


def status_counts(study_dir: Path | str) -> pd.DataFrame:
    """Trials per task (rows) and status (columns, every status in STATUSES), as int64 counts."""
    trials = load_trials(study_dir)
    counts = pd.crosstab(trials["task"].astype(str), trials["status"].astype(str))
    counts = counts.reindex(columns=list(STATUSES), fill_value=0).astype("int64")
    counts.index = counts.index.astype(pd.StringDtype())
    counts.index.name = "task"
    counts.columns.name = "status"
    return counts
