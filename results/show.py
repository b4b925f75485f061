"""Print a readable summary of a study's tables: ``python -m results.show <study dir>``."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from datamodules.cli import Exit, Parser, UsageError
from models.metric_names import VAL2_METRICS, VAL_METRICS
from results import history
from results.plan import STUDY_FILE, StudyConfig
from results.query import (
    TableError,
    best_trials,
    early_stopping_savings,
    load_trials,
    status_counts,
    tables_dir,
)
from results.schema import BEST_PREFIX, PARAM_PREFIX
from results.store import child, download, exists, files, is_uri, local_view, shown


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _compile_lines(trials: pd.DataFrame) -> list[str]:
    """What torch.compile cost per task: graphs and seconds over the trials that compiled."""
    compiled = trials[trials["compile_seconds"].notna()]
    if compiled.empty:
        return ["torch.compile: no trial compiled (eager)"]
    lines = ["torch.compile cost (graphs compiled, seconds compiling, over the trials that compiled):"]
    for task, rows in compiled.groupby("task", observed=True, sort=True):
        graphs = rows["graphs_compiled"].astype("Int64")
        lines.append(
            f"  {task}: {len(rows)} trials, graphs {int(graphs.min())}-{int(graphs.max())} per trial, "
            f"{rows['compile_seconds'].sum():.0f} s in all (first trial to start "
            f"{rows.sort_values('started_at')['compile_seconds'].iloc[0]:.0f} s, "
            f"median {rows['compile_seconds'].median():.0f} s)"
        )
    return lines


def summary(study_dir: Path) -> str:
    """The summary text of one study directory; raises TableError for a bad table."""
    lines = [f"study directory: {study_dir.absolute()}", ""]
    counts = status_counts(study_dir)
    lines += ["trials by status:", counts.to_string(), ""]
    best = best_trials(study_dir)
    if best.empty:
        lines += ["best trial per task: none finished yet", ""]
    for record in best.itertuples(index=False):
        # pandas-stubs types the rows as tuples whose every attribute is a cell; they are namedtuples (_asdict).
        row: dict[str, Any] = record._asdict()  # type: ignore[operator,misc]
        lines.append(
            f"best {row['task']} trial: {row['trial_id']} ({row['status']}), "
            f"{row['metric']} = {_fmt(row['score'])} at epoch {row['best_epoch']} "
            f"of {row['epochs_completed']} (last {_fmt(row['objective_last'])})"
        )
        params = {k[len(PARAM_PREFIX) :]: v for k, v in row.items() if k.startswith(PARAM_PREFIX)}
        lines.append("  params: " + ", ".join(f"{k}={_fmt(v)}" for k, v in params.items() if not pd.isna(v)))
        metrics = {m: row[BEST_PREFIX + m] for m in VAL_METRICS if not pd.isna(row[BEST_PREFIX + m])}
        lines.append("  best metrics: " + ", ".join(f"{k}={_fmt(v)}" for k, v in metrics.items()))
        second = {m: row[BEST_PREFIX + m] for m in VAL2_METRICS if not pd.isna(row[BEST_PREFIX + m])}
        if second:  # the study validated on a second set (--val-data)
            values = ", ".join(f"{k}={_fmt(v)}" for k, v in second.items())
            lines.append(f"  best on the second validation set: {values}")
        if not pd.isna(row["checkpoint_path"]):
            lines.append(f"  checkpoint: {row['checkpoint_path']}")
        lines.append("")
    savings = early_stopping_savings(study_dir)
    lines.append("early stopping savings:")
    lines.append(savings.to_string(float_format=lambda x: f"{x:.3g}"))
    trials = load_trials(study_dir)
    lines += ["", *_compile_lines(trials)]
    moved = history.lines(trials)
    if moved:  # a trial restarted (a lost node, a dead worker, a retried error, --resume)
        lines += ["", *moved]
    lines += ["", f"tables: {tables_dir(study_dir).absolute()}/{{trials,epochs}}.parquet"]
    return "\n".join(lines)


def studies(folder: Path) -> str:
    """One line per study in ``folder`` (a ``--storage`` folder): name, tasks, trials by status, last change.

    Raises:
        ValueError: ``folder`` holds no study.
    """
    found = sorted(p.parent for p in folder.glob(f"*/{STUDY_FILE}"))
    if not found:
        raise ValueError(f"{folder.absolute()} is not a study directory and holds no study (no */{STUDY_FILE})")
    lines = [f"{len(found)} {'study' if len(found) == 1 else 'studies'} in {folder.absolute()}:"]
    for study_dir in found:
        try:
            plan = StudyConfig.from_json((study_dir / STUDY_FILE).read_text())
            what = f"{', '.join(plan.tasks)}, {plan.num_samples} trials x {plan.epochs} epochs per task"
        except (OSError, ValueError, TypeError, KeyError):
            what = f"{STUDY_FILE} unreadable"
        try:
            statuses = (
                load_trials(study_dir)["status"].value_counts().to_dict() if tables_dir(study_dir).is_dir() else {}
            )
        except TableError:
            statuses = {"tables unreadable": 1}
        counts = ", ".join(f"{n} {s}" for s, n in statuses.items()) or "no trial yet"
        changed = datetime.fromtimestamp(study_dir.stat().st_mtime, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"  {study_dir.name}: {what}; {counts}; last change {changed}")
    lines.append(f"summary of one: python -m results.show {folder / found[0].name}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="python -m results.show", description=__doc__.splitlines()[0])
    parser.add_argument(
        "study_dir",
        help="a study directory <storage>/<study name>, or a storage folder to list its studies; a path or an "
        "object store URI (s3://bucket/prefix/<study name>)",
    )
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return Exit.USAGE
    if is_uri(args.study_dir):
        return _main_remote(args.study_dir)
    study_dir = Path(args.study_dir)
    if not study_dir.is_dir():
        print(f"error: {study_dir.absolute()}: no such study directory", file=sys.stderr)
        return Exit.USAGE
    try:
        is_study = (study_dir / STUDY_FILE).is_file() or tables_dir(study_dir).is_dir()
        text = summary(study_dir) if is_study else studies(study_dir)
    except (TableError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return Exit.USAGE
    print(text)
    return Exit.OK


def _main_remote(location: str) -> int:
    """``main`` for a study (or a storage folder) in object storage: read from a local view of its files."""
    try:
        if exists(child(location, STUDY_FILE)):
            with local_view(location) as view:
                text = summary(view).replace(str(view.absolute()), shown(location), 1)
        else:
            text = _remote_studies(location)
    except (TableError, ValueError, OSError) as exc:
        print(f"error: {shown(location)}: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return Exit.USAGE
    print(text)
    return Exit.OK


def _remote_studies(location: str) -> str:
    """``studies`` of a storage folder in object storage (each study's plan and tables, fetched)."""
    names = [
        rel.split("/")[0]
        for rel in files(location, skip=lambda rel: rel.count("/") != 1 or not rel.endswith(STUDY_FILE))
    ]
    if not names:
        raise ValueError(f"not a study and holds no study (no */{STUDY_FILE})")
    with tempfile.TemporaryDirectory(prefix="welllog-study-list-") as tmp:
        for name in names:
            download(
                child(location, name),
                Path(tmp, name),
                skip=lambda rel: rel != STUDY_FILE and not rel.startswith("tables/"),
            )
        lines = studies(Path(tmp)).replace(str(Path(tmp).absolute()), shown(location)).splitlines()
    lines[-1] = f"summary of one: python -m results.show {shown(child(location, sorted(names)[0]))}"
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
