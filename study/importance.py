"""Parameter importance of each task's trials, by Optuna's own evaluator, kept in the study's tables.

``python -m study.importance STUDY_DIR`` computes the importances of a study from its trials table and saves
them in ``STUDY_DIR/tables/importance.parquet`` (``results.importance``), where the report reads them: for a
study written before the study kept them itself. The driver does the same whenever a trial finishes and when the
study ends (``record``). STUDY_DIR is a path or an object store URI (``s3://...``). Exit status 0, or 2 with one
line for a missing or damaged study.

The trials table holds every hyperparameter as a typed ``param_<name>`` column; this module turns those rows
into an in-memory Optuna study (one COMPLETE trial per finished trial, valued by its best objective) and asks
``optuna.importance.get_param_importances`` (PED-ANOVA, Optuna's default evaluator) about it. It reads no
journal and starts no Ray. Each parameter's domain is the range the trials covered (``results.importance.domains``);
a parameter that took a single value says nothing and is left out. Trials stopped early by ASHA count with the
best value they reached before the cut: that is what they tell about their region of the space (Optuna's own
journal marks them PRUNED and its evaluators skip them).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, TypeAlias

import optuna
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from datamodules.cli import Exit, Parser, UsageError
from results.importance import IMPORTANCE_FILE, IMPORTANCE_SCHEMA, Domain, domains, finished, location
from results.plan import STUDY_FILE
from results.query import TableError, load_trials
from results.schema import PARAM_PREFIX
from results.store import LocationError, child, exists, is_uri, local_path, shown, write_bytes
from results.tables import COMPRESSION, StudyTables, write_atomic

Direction: TypeAlias = Literal["minimize", "maximize"]  # an Optuna study's direction


def direction_of(mode: str) -> Direction:
    """Optuna's direction for an objective mode ("min" or "max")."""
    return "minimize" if mode == "min" else "maximize"


def distribution(domain: Domain) -> BaseDistribution:
    if domain.kind == "categorical":
        return CategoricalDistribution(domain.choices)
    if domain.kind == "int":
        return IntDistribution(int(domain.low), int(domain.high))
    return FloatDistribution(domain.low, domain.high, log=domain.log)


def _value(dist: BaseDistribution, value: str | float) -> str | int | float:
    if isinstance(dist, CategoricalDistribution):
        return str(value)
    if isinstance(dist, IntDistribution):
        return int(value)
    return float(value)


def tables_study(trials: pd.DataFrame, direction: Direction) -> optuna.Study:
    """An in-memory Optuna study of the finished trials with a finite ``objective_best``.

    Args:
        trials: rows of one task of the trials table.
        direction: "minimize" or "maximize".
    """
    done = finished(trials)
    dists = {name: distribution(d) for name, d in domains(done).items()}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        study = optuna.create_study(direction=direction, storage=optuna.storages.InMemoryStorage())
    finally:
        optuna.logging.set_verbosity(verbosity)
    for _, row in done.iterrows():
        params = {n: _value(d, row[PARAM_PREFIX + n]) for n, d in dists.items() if not pd.isna(row[PARAM_PREFIX + n])}
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions={n: dists[n] for n in params},
                value=float(row["objective_best"]),
                state=TrialState.COMPLETE,
                user_attrs={"trial_id": str(row["trial_id"]), "status": str(row["status"])},
            )
        )
    return study


def param_importances(trials: pd.DataFrame, direction: Direction) -> dict[str, float]:
    """Importance of each parameter (normalised to sum to 1), most important first; {} with fewer than two
    finished trials of different values, or no parameter that varied."""
    study = tables_study(trials, direction)
    values = {t.value for t in study.trials}
    if len(values) < 2 or not any(t.params for t in study.trials):
        return {}
    with warnings.catch_warnings():  # PED-ANOVA warns that a few trials make a rough estimate: the report says so
        warnings.simplefilter("ignore")
        return dict(optuna.importance.get_param_importances(study))


def importance_table(trials: pd.DataFrame) -> pa.Table:
    """The importances of every task of a trials table (``results.importance.IMPORTANCE_SCHEMA``); a task with
    too few finished trials has no rows. Each task's direction is its rows' ``objective_mode``."""
    now = datetime.now(timezone.utc)
    rows = []
    for task, task_trials in trials.groupby("task", sort=True):
        if task_trials.empty:
            continue
        direction = direction_of(str(task_trials["objective_mode"].iloc[0]))
        count = len(finished(task_trials))
        for param, share in param_importances(task_trials, direction).items():
            rows.append(
                {"task": task, "param": param, "importance": share, "trials": count, "computed_at": now}
            )  # fmt: skip
    return pa.Table.from_pylist(rows, schema=IMPORTANCE_SCHEMA)


def record(tables: StudyTables) -> bool:
    """The driver: the importances of the trials table ``tables`` has just written, saved beside it like the
    tables themselves (``StudyTables.write_table``); False, nothing written, while the storage is failing."""
    if tables.held or not tables.trials_path.is_file():
        return False
    return tables.write_table(IMPORTANCE_FILE, importance_table(load_trials(tables.tables_dir.parent)))


def save(study_dir: Path | str) -> str:
    """Compute and save the importances of the study at ``study_dir`` (a path or a URI); returns where.

    Raises:
        UsageError: not a study, or its trials table is missing or damaged (one line).
    """
    text = str(study_dir)
    try:
        if not exists(child(text, STUDY_FILE)):
            if not is_uri(text) and not local_path(text).is_dir():
                raise UsageError(f"no such study directory: {local_path(text).absolute()}")
            raise UsageError(f"{shown(text)} is not a study (no {STUDY_FILE}); give STORAGE/STUDY_NAME")
        study = text if is_uri(text) else local_path(text)
        table = importance_table(load_trials(study))
        where = location(study)
        if isinstance(where, Path):
            write_atomic(where, table)
        else:
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression=COMPRESSION, write_page_checksum=True)
            write_bytes(where, sink.getvalue().to_pybytes())  # one object: a store's PUT is atomic
    except TableError as exc:
        raise UsageError(str(exc)) from None
    except (OSError, LocationError) as exc:
        raise UsageError(f"{shown(text)}: {str(exc).strip().splitlines()[0]}") from None
    return shown(where)


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="python -m study.importance", description=__doc__.splitlines()[0])
    parser.add_argument(
        "study_dir", help="the study directory, <storage>/<study name>: a path or an object store URI (s3://...)"
    )
    try:
        args = parser.parse_args(argv)
        where = save(args.study_dir)
    except UsageError as exc:
        print(f"study.importance: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    print(f"wrote {where}")
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
