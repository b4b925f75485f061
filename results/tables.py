"""The driver-side writer of a study's two tables.

One ``StudyTables`` per study directory, in one process (the Tune driver). Rows are kept in memory, keyed by
``(trial_id, epoch)`` and ``trial_id``, so a repeated delivery overwrites instead of duplicating. Every
``record_*`` call rewrites the affected file(s) at once: the tables are small (hundreds of trials, thousands
of epochs) and an immediate atomic write means a killed driver loses at most the record in flight.

Each write goes to a hidden temporary file in the same directory (``.<name>.<pid>.<random>.tmp``), is flushed
and fsynced, then ``os.replace``d onto the final name, and the directory is fsynced: a reader sees a whole old
or a whole new file, never a partial one. Leftover temporary files of a killed writer are deleted on open.
The columns and the schema's evolution rules are in docs/schema.md.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypeAlias

import pyarrow as pa
import pyarrow.parquet as pq

from models.metric_names import BEST_METRICS, METRICS, mode_of
from results.query import TableError, read_table
from results.schema import (
    BEST_PREFIX,
    EPOCHS_FILE,
    EPOCHS_SCHEMA,
    PARAM_PREFIX,
    RESTART_REASONS,
    SCHEMA_VERSION,
    STATUSES,
    TRIALS_FILE,
    param_columns,
    trials_schema,
)

log = logging.getLogger(__name__)

Compression: TypeAlias = Literal["gzip", "brotli", "lz4", "zstd", "snappy", "none"]  # Parquet codecs
COMPRESSION: Compression = "zstd"
_EPOCH_KEYS = ("study", "task", "trial_id", "epoch", "timestamp")
# Columns of a trial row that record_trial sets (besides the param_* columns); the rest are derived from the
# epoch rows on every write.
_TRIAL_INPUTS = (
    "study",
    "task",
    "trial_id",
    "status",
    "error",
    "error_file",
    "epoch_budget",
    "devices",
    "started_at",
    "finished_at",
    "node",
    "nodes",
    "restarts",
    "restart_reasons",
    "checkpoint_path",
)


def is_temporary(name: str) -> bool:
    """Whether a file name is one of our temporary files (hidden, containing ``.tmp``)."""
    return name.startswith(".") and ".tmp" in name


def write_atomic(path: Path, table: pa.Table, compression: Compression = COMPRESSION) -> None:
    """Write ``table`` to ``path`` so that ``path`` always holds a whole old or a whole new file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    replaced = False
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression=compression, write_page_checksum=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        replaced = True
    finally:
        if not replaced:  # a failed write leaves no temporary behind (a killed one is cleaned on next open)
            tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(timezone.utc)


def _float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _param(name: str, typ: pa.DataType, value: Any) -> Any:
    if value is None:
        return None
    if pa.types.is_string(typ):
        if not isinstance(value, str):
            raise ValueError(f"param {name!r} must be a string, got {value!r}")
        return value
    if pa.types.is_integer(typ):
        # typeshed's numbers.Real.__trunc__ returns _IntegralLike, not int, so int() of a Real does not type-check
        # there; every Real converts to int (int, float, Fraction, Decimal and numpy's scalars alike).
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or float(value) != int(value):  # type: ignore[call-overload]
            raise ValueError(f"param {name!r} must be an integer, got {value!r}")
        return int(value)  # type: ignore[call-overload]
    return _float(value, f"param {name!r}")


def check_param_columns(path: Path, schema: pa.Schema, params: Mapping[str, pa.DataType]) -> None:
    """TableError unless every ``param_*`` column of a table is a hyperparameter this writer knows, same type."""
    for field in schema:
        if not field.name.startswith(PARAM_PREFIX):
            continue
        known = params.get(field.name)
        if known is None:
            raise TableError(
                Path(path).absolute(),
                f"hyperparameter column {field.name!r} is unknown to this welllog-study (written by a newer one?)",
            )
        if not field.type.equals(known):
            raise TableError(Path(path).absolute(), f"column {field.name!r} has type {field.type}, expected {known}")


def check_resumable(tables_dir: Path, param_types: Mapping[str, type]) -> None:
    """Everything ``StudyTables`` would refuse on open, checked without writing (TableError naming the file)."""
    for name in (EPOCHS_FILE, TRIALS_FILE):
        path = Path(tables_dir) / name
        if path.exists():
            table, _ = read_table(path, name)
            check_param_columns(path, table.schema, param_columns(param_types))


def _best(values: list[tuple[int, float | None]], mode: str) -> tuple[int | None, float | None]:
    """(epoch, value) of the best non-NaN value by ``mode``; the earliest epoch wins ties."""
    best_epoch, best = None, None
    for epoch, value in values:
        if value is None or math.isnan(value):
            continue
        if best is None or (value < best if mode == "min" else value > best):
            best_epoch, best = epoch, value
    return best_epoch, best


class StudyTables:
    """Writes ``trials.parquet`` and ``epochs.parquet`` of one study; resumes from the files already there.

    Args:
        tables_dir: the study's ``tables`` directory (created if missing).
        study: study name stored in every row.
        objective: metric name the study optimises; its mode comes from ``models.metric_names``.
        param_types: hyperparameter name -> Python type, one ``param_<name>`` column each; default: the trial
            parameter record of this version (``models.hparams.param_types``).

    Tables written by an older schema version are upgraded in place (both rewritten atomically) on open. The
    columns are described in docs/schema.md.

    Raises:
        ValueError: ``objective`` is not a metric of ``models.metric_names``.
        TableError: an existing table is damaged, foreign, newer than this version, belongs to another study,
            or has a hyperparameter column this version does not know or types differently (left untouched).
        TypeError: a hyperparameter type has no arrow column type (float, int and str have).
    """

    def __init__(
        self, tables_dir: Path | str, study: str, objective: str, param_types: Mapping[str, type] | None = None
    ) -> None:
        if objective not in METRICS:
            raise ValueError(f"unknown objective {objective!r}; expected one of {', '.join(METRICS)}")
        self.tables_dir = Path(tables_dir)
        self.study = study
        self.objective = objective
        self.objective_mode = mode_of(objective)
        if param_types is None:
            from models.hparams import param_types as current  # the driver's record; keeps readers torch-free

            param_types = current()
        self.params = param_columns(param_types)  # param_<name> -> arrow type
        self.trials_schema = trials_schema(self.params)
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        self._remove_temporaries()
        self._epochs: dict[tuple[str, int], dict[str, Any]] = {}
        self._trials: dict[str, dict[str, Any]] = {}
        # While the storage cannot take writes: record_* change the rows in memory only; flush() writes them.
        self.held = False
        # Called after each table write (the driver sends a study in object storage to its store: study.mirror).
        self.after_write: Callable[[], None] | None = None
        self.upgraded_from: set[str] = set()  # versions of older files this writer upgraded
        for row in self._load(EPOCHS_FILE):
            self._epochs[(row["trial_id"], row["epoch"])] = row
        inputs = (*_TRIAL_INPUTS, *self.params)
        for row in self._load(TRIALS_FILE):
            self._trials[row["trial_id"]] = {name: row.get(name) for name in inputs}
        if self.upgraded_from:
            log.warning(
                "upgrading the tables in %s from schema %s to %s",
                self.tables_dir,
                ", ".join(sorted(self.upgraded_from)),
                SCHEMA_VERSION,
            )
            self.flush()

    @property
    def trials_path(self) -> Path:
        return self.tables_dir / TRIALS_FILE

    @property
    def epochs_path(self) -> Path:
        return self.tables_dir / EPOCHS_FILE

    def last_epoch(self, trial_id: str) -> int:
        """The highest epoch recorded for ``trial_id`` (0 if none): survives a driver restart."""
        return max((epoch for tid, epoch in self._epochs if tid == trial_id), default=0)

    def started_at(self, trial_id: str) -> datetime | None:
        trial = self._trials.get(trial_id)
        return trial["started_at"] if trial else None

    def history(self, trial_id: str) -> tuple[list[str | None], list[str]]:
        """The trial's runs as recorded: the node of each (None where not known) and the reason of each restart.

        A trial with no row has neither; a row written before schema 1.3 knows only its last ``node``.
        """
        row = self._trials.get(trial_id)
        if row is None:
            return [], []
        nodes = row["nodes"]
        if nodes is None:
            nodes = [row["node"]] if row["node"] else []
        return list(nodes), list(row["restart_reasons"] or [])

    def errored(self, task: str) -> list[str]:
        return sorted(t for t, row in self._trials.items() if row["task"] == task and row["status"] == "error")

    def drop_trial(self, trial_id: str) -> None:
        """Remove a trial and its epochs: for an errored trial that is restarted from scratch under a new id."""
        self._trials.pop(trial_id, None)
        self._epochs = {key: row for key, row in self._epochs.items() if key[0] != trial_id}
        self.flush()

    def set_checkpoint_path(self, trial_id: str, path: str | None) -> None:
        """Point the trial's row at its best checkpoint (known once the trial has finished)."""
        if trial_id not in self._trials:
            raise KeyError(f"no trial {trial_id!r} in {self.trials_path}")
        self._trials[trial_id]["checkpoint_path"] = path
        self._write_trials()

    def best(self, trial_id: str) -> tuple[int | None, float | None]:
        """(epoch, value) of the trial's best objective so far, as the trials table ranks it (None, None: none)."""
        values = [(epoch, row[self.objective]) for (tid, epoch), row in sorted(self._epochs.items()) if tid == trial_id]
        return _best(values, self.objective_mode)

    def trial_ids(self, task: str) -> list[str]:
        return sorted(t for t, row in self._trials.items() if row["task"] == task)

    def statuses(self, task: str) -> dict[str, str]:
        """trial id -> status of the task's trials."""
        return {t: row["status"] for t, row in sorted(self._trials.items()) if row["task"] == task}

    def running(self, task: str | None = None) -> list[str]:
        """Trials whose row says ``running`` (of ``task``, or all)."""
        return sorted(
            t for t, row in self._trials.items() if row["status"] == "running" and task in (None, row["task"])
        )

    def interrupt_running(self, task: str | None = None) -> list[str]:
        """Mark trials still ``running`` as ``interrupted`` (their driver stopped) and write; returns their ids.

        Once the driver has stopped, no trial runs: a ``running`` row left by a killed driver is stale too.
        """
        ids = self.running(task)
        for trial_id in ids:
            self._trials[trial_id]["status"] = "interrupted"
        if ids:
            self._write_trials()
        return ids

    def _remove_temporaries(self) -> None:
        for entry in self.tables_dir.iterdir():
            if is_temporary(entry.name) and entry.is_file():
                log.info("removing leftover temporary file %s", entry)
                entry.unlink(missing_ok=True)

    def _load(self, name: str) -> list[dict[str, Any]]:
        path = self.tables_dir / name
        if not path.exists():
            return []
        table, version = read_table(path, name)
        if version != SCHEMA_VERSION:
            self.upgraded_from.add(str(version))
        check_param_columns(path, table.schema, self.params)
        rows = table.to_pylist()
        foreign = {row["study"] for row in rows} - {self.study}
        if foreign:
            raise TableError(path.absolute(), f"holds study {sorted(foreign)[0]!r}, not {self.study!r}")
        return rows

    def record_epoch(self, trial_id: str, task: str, epoch: int, values: Mapping[str, Any]) -> None:
        """Upsert the row of ``(trial_id, epoch)`` and rewrite the epochs table (and the trial's row, if any).

        A repeated ``(trial_id, epoch)`` replaces the earlier row. While ``held``, the row changes in memory only
        and ``flush()`` writes it.

        Args:
            trial_id: the trial's id (Ray's).
            task: the trial's task.
            epoch: 1-based epoch number.
            values: metric values by name plus ``lr``, ``epoch_seconds``, ``images_per_second``,
                ``pad_fraction``, ``compile_seconds``, ``graphs_compiled``; unknown keys are ignored, missing
                ones stored as null. An optional ``timestamp`` (aware datetime or Unix seconds) is kept,
                otherwise the time of this call.

        Raises:
            ValueError: ``epoch`` is not an integer >= 1, a value is not a number, or ``timestamp`` is a naive
                datetime; nothing is recorded.
            OSError: a table could not be written; the row stays in memory for the next write or ``flush()``.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 1:
            raise ValueError(f"epoch must be an integer >= 1, got {epoch!r}")
        row: dict[str, Any] = {"study": self.study, "task": task, "trial_id": trial_id, "epoch": int(epoch)}
        for name in (n for n in EPOCHS_SCHEMA.names if n not in _EPOCH_KEYS):  # every metric and measurement
            row[name] = _float(values.get(name), name)
        stamp = values.get("timestamp")
        if isinstance(stamp, datetime):
            row["timestamp"] = _utc(stamp, "timestamp")
        elif isinstance(stamp, numbers.Real) and not isinstance(stamp, bool):
            row["timestamp"] = datetime.fromtimestamp(float(stamp), tz=timezone.utc)
        else:
            row["timestamp"] = datetime.now(timezone.utc)
        self._epochs[(trial_id, int(epoch))] = row
        self._write_epochs()
        if trial_id in self._trials:
            self._write_trials()

    def record_trial(
        self,
        trial_id: str,
        task: str,
        *,
        status: str,
        params: Mapping[str, Any],
        epoch_budget: int,
        devices: float,
        started_at: datetime | None,
        finished_at: datetime | None,
        node: str,
        checkpoint_path: str | None,
        error: str | None = None,
        error_file: str | None = None,
        nodes: Sequence[str | None] | None = None,
        restart_reasons: Sequence[str] | None = None,
    ) -> None:
        """Upsert the row of ``trial_id`` and rewrite the trials table.

        Derived columns (epochs_completed, best_epoch, objective best/last, ``best_<metric>``, wall/device/saved
        seconds, compile figures) are computed from the trial's epoch rows on every write. While ``held``, the
        row changes in memory only and ``flush()`` writes it.

        Args:
            trial_id: the trial's id (Ray's).
            task: the trial's task.
            status: one of ``results.schema.STATUSES``.
            params: hyperparameters by name (names of ``param_types``, without the ``param_`` prefix); missing
                ones are stored as null.
            epoch_budget: epochs planned for the trial.
            devices: GPUs the trial holds, or its CPUs on a CPU-only study (``device_seconds`` = wall x devices).
            started_at: when the trial first started; timezone-aware, stored in UTC.
            finished_at: when it ended, None while it runs; timezone-aware.
            node: host and Ray node id that runs it.
            checkpoint_path: its best checkpoint, if known.
            error: the trial's error text, for ``status="error"`` (or an interrupted trial).
            error_file: where the full error is kept.
            nodes: the node of each run of the trial, in order (None for a run whose node is not known); None
                keeps what the row holds (``history``); a new row starts from ``[node]`` (``[]`` when ``node`` is
                empty).
            restart_reasons: why each run after the first started, one of ``results.schema.RESTART_REASONS``
                each; None keeps what the row holds. ``restarts`` is their number.

        Raises:
            ValueError: an unknown status, restart reason or hyperparameter name, a hyperparameter value of the
                wrong type, an ``epoch_budget`` that is not an integer >= 0, a non-numeric ``devices``, or a naive
                timestamp; nothing is recorded.
            OSError: the table could not be written; the row stays in memory for the next write or ``flush()``.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        names = {column[len(PARAM_PREFIX) :]: column for column in self.params}
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise ValueError(f"unknown params {unknown}; expected names from {', '.join(names)}")
        if isinstance(epoch_budget, bool) or not isinstance(epoch_budget, numbers.Integral) or epoch_budget < 0:
            raise ValueError(f"epoch_budget must be an integer >= 0, got {epoch_budget!r}")
        known_nodes, known_reasons = self.history(trial_id)
        if trial_id not in self._trials and node:
            known_nodes = [node]
        nodes = list(known_nodes if nodes is None else nodes)
        reasons = list(known_reasons if restart_reasons is None else restart_reasons)
        odd = sorted({r for r in reasons if r not in RESTART_REASONS}, key=str)
        if odd:
            raise ValueError(f"unknown restart reasons {odd}; expected ones of {', '.join(RESTART_REASONS)}")
        if not all(n is None or isinstance(n, str) for n in nodes):
            raise ValueError(f"nodes must be strings (or None where not known), got {nodes!r}")
        row: dict[str, Any] = {
            "study": self.study,
            "task": task,
            "trial_id": trial_id,
            "status": status,
            "error": error,
            "error_file": error_file,
            **{column: _param(name, self.params[column], params.get(name)) for name, column in names.items()},
            "epoch_budget": int(epoch_budget),
            "devices": _float(devices, "devices"),
            "started_at": _utc(started_at, "started_at"),
            "finished_at": _utc(finished_at, "finished_at"),
            "node": node,
            "nodes": nodes,
            "restarts": len(reasons),
            "restart_reasons": reasons,
            "checkpoint_path": checkpoint_path,
        }
        self._trials[trial_id] = row
        self._write_trials()

    def flush(self) -> None:
        """Rewrite both tables (each record_* call already wrote what it changed, unless ``held``)."""
        self._write_epochs(force=True)
        self._write_trials(force=True)

    def write_table(self, name: str, table: pa.Table) -> bool:
        """Write another table of the study (its parameter importances) into the tables directory as the two are
        written: atomically, then ``after_write``. Returns False, writing nothing, while ``held``."""
        if self.held:
            return False
        write_atomic(self.tables_dir / name, table)
        if self.after_write is not None:
            self.after_write()
        return True

    def _write_epochs(self, force: bool = False) -> None:
        if self.held and not force:
            return
        rows = [self._epochs[key] for key in sorted(self._epochs)]
        write_atomic(self.epochs_path, pa.Table.from_pylist(rows, schema=EPOCHS_SCHEMA))
        if self.after_write is not None:
            self.after_write()

    def _write_trials(self, force: bool = False) -> None:
        if self.held and not force:
            return
        by_trial: dict[str, list[dict[str, Any]]] = {}
        for key in sorted(self._epochs):
            by_trial.setdefault(key[0], []).append(self._epochs[key])
        rows = [
            {**self._trials[tid], **self._derived(self._trials[tid], by_trial.get(tid, []))}
            for tid in sorted(self._trials, key=lambda t: (self._trials[t]["task"], t))
        ]
        write_atomic(self.trials_path, pa.Table.from_pylist(rows, schema=self.trials_schema))
        if self.after_write is not None:
            self.after_write()

    def _derived(self, trial: Mapping[str, Any], epochs: list[dict[str, Any]]) -> dict[str, Any]:
        """Columns computed from one trial's epoch rows (sorted by epoch)."""
        objective = [(e["epoch"], e[self.objective]) for e in epochs]
        best_epoch, objective_best = _best(objective, self.objective_mode)
        epoch_seconds = [e["epoch_seconds"] for e in epochs if e["epoch_seconds"] is not None]
        started, finished = trial["started_at"], trial["finished_at"]
        if started is not None and finished is not None:
            wall = (finished - started).total_seconds()
        else:
            wall = float(sum(epoch_seconds))
        devices = trial["devices"]
        saved: float | None = 0.0
        if trial["status"] == "stopped_early":
            missing = max(trial["epoch_budget"] - len(epochs), 0)
            saved = missing * sum(epoch_seconds) / len(epoch_seconds) if epoch_seconds else None
        compiled = [e for e in epochs if e.get("compile_seconds") is not None]
        return {
            "epochs_completed": len(epochs),
            "best_epoch": best_epoch,
            "objective": self.objective,
            "objective_mode": self.objective_mode,
            "objective_best": objective_best,
            "objective_last": epochs[-1][self.objective] if epochs else None,
            **{
                BEST_PREFIX + name: _best([(e["epoch"], e[name]) for e in epochs], mode)[1]
                for name, mode in BEST_METRICS.items()
            },
            "wall_seconds": wall,
            "device_seconds": wall * devices if devices is not None else None,
            "seconds_saved": saved,
            "compile_seconds": sum(e["compile_seconds"] for e in compiled) if compiled else None,
            "graphs_compiled": int(sum(e["graphs_compiled"] or 0 for e in compiled)) if compiled else None,
            "schema_version": SCHEMA_VERSION.major,
        }
