"""The LAS figures of a study: its best trials' curves read off rasters into LAS files, scored in their own units.

``python -m bench.las --best STUDY --task T`` writes them (``record``) into ``STUDY/tables/las_scores.parquet``,
one row per (task, source, curve type), replacing the rows of the task it scored; the study's report shows them
(``section``) when the table exists. Schema in ``docs/schema.md`` ("las_scores.parquet"); the file is written
atomically (``results.tables.write_atomic``) and read back validated, like the study's other tables.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from results.query import tables_dir
from results.schema import TIMESTAMP
from results.tables import write_atomic

LAS_SCORES_FILE = "las_scores.parquet"
SOURCES = ("model", "perfect")  # the best trial's model, or the true labels through the same path (the ceiling)

_FIELDS: list[pa.Field[Any]] = [
    pa.field("task", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("trial_id", pa.string()),
    pa.field("curve_type", pa.string(), nullable=False),
    pa.field("unit", pa.string(), nullable=False),
    pa.field("curves", pa.int32(), nullable=False),
    pa.field("coverage", pa.float64()),
    pa.field("null_share", pa.float64()),
    pa.field("r2_las", pa.float64()),
    pa.field("mae_las", pa.float64()),
    pa.field("r2_300", pa.float64()),
    pa.field("mae_300", pa.float64()),
    pa.field("rasters", pa.int32(), nullable=False),
    pa.field("scale", pa.float64(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("step", pa.float64(), nullable=False),
    pa.field("scored_at", TIMESTAMP, nullable=False),
]
LAS_SCORES_SCHEMA = pa.schema(_FIELDS)


@dataclass(frozen=True)
class LasScore:
    """One curve type's figures from one source (``SOURCES``) of one task; NaN where nothing was scored."""

    task: str
    source: str
    trial_id: str | None
    curve_type: str
    unit: str
    curves: int
    coverage: float
    null_share: float
    r2_las: float
    mae_las: float
    r2_300: float
    mae_300: float
    rasters: int
    scale: float
    seed: int
    step: float


def path_of(study_dir: Path | str) -> Path:
    return tables_dir(study_dir) / LAS_SCORES_FILE


def record(study_dir: Path | str, task: str, scores: Sequence[LasScore]) -> Path:
    """Replace the LAS figures of ``task`` in the study's table with ``scores`` (the other tasks' rows kept)."""
    path = path_of(study_dir)
    now = datetime.now(UTC)
    kept = [r for r in _rows(path) if r["task"] != task]
    rows = kept + [{**asdict(s), "scored_at": now} for s in scores]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, pa.Table.from_pylist(rows, schema=LAS_SCORES_SCHEMA))
    return path


def _rows(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    rows: list[dict[str, object]] = pq.read_table(path, schema=LAS_SCORES_SCHEMA).to_pylist()
    return rows


def load(study_dir: Path | str) -> pd.DataFrame | None:
    """The study's LAS figures, or None when ``bench.las --best`` never scored it; ValueError for a damaged file."""
    path = path_of(study_dir)
    if not path.exists():
        return None
    try:
        return pq.read_table(path, schema=LAS_SCORES_SCHEMA).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: not a LAS figures table ({exc})") from None


def _f(value: float | int | None, digits: int) -> str:
    return "" if value is None or math.isnan(value) else f"{float(value):.{digits}g}"


def section(study_dir: Path | str, task: str) -> str:
    """The report's "LAS figures" section of ``task`` (HTML), or "" when the study has none for it."""
    try:
        table = load(study_dir)
    except ValueError as exc:
        return f'<section id="{task}-las"><h3>LAS figures</h3><p class="note">{html.escape(str(exc))}</p></section>'
    if table is None or not (table["task"] == task).any():
        return ""
    rows = table[table["task"] == task].sort_values(["source", "curve_type"])
    first = rows.iloc[0]
    trial = next((str(t) for t in rows["trial_id"] if isinstance(t, str)), "")
    head = ["source", "curve type", "unit", "curves", "null share", "R^2 (LAS grid)", "MAE (LAS grid)",
            "R^2 (300 points)", "MAE (300 points)"]  # fmt: skip
    cells = [
        (
            r["source"],
            r["curve_type"],
            r["unit"],
            r["curves"],
            _f(r["null_share"], 3),
            _f(r["r2_las"], 4),
            _f(r["mae_las"], 4),
            _f(r["r2_300"], 4),
            _f(r["mae_300"], 4),
        )
        for r in rows.to_dict("records")
    ]
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in cells)
    note = (
        f"The best trial {html.escape(trial)}'s curves traced into LAS files and scored in their own units (log10 "
        f"for resistivity) against the generator's truth on {int(first.rasters)} validation rasters at scale "
        f"{float(first.scale):g}, LAS step {float(first.step):g}; <em>perfect</em> is the true labels through the "
        f"same path (the ceiling). Written by <code>python -m bench.las --best</code> at "
        f"{html.escape(str(first.scored_at))[:19]}."
    )
    table_html = "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{body}</table>"
    return f'<section id="{task}-las"><h3>LAS figures</h3><p class="note">{note}</p>{table_html}</section>'
