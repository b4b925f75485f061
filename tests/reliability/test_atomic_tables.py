"""Atomic table writes under SIGKILL, 200 times, with a reader polling the final names while each write runs.

Goes further than tests/results/test_tables.py (20 kills of a whole driver): here each forked child writes one
large version (thousands of rows, several ms) of both tables with ``write_atomic``, the kill lands at a seeded
random point inside that write, and the parent reads the final names concurrently with the validating loader.
"""

from __future__ import annotations

import os
import random
import select
import signal
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from models.hparams import param_types
from results.query import read_table
from results.schema import EPOCHS_FILE, EPOCHS_SCHEMA, TRIALS_FILE, param_columns, trials_schema
from results.tables import StudyTables, is_temporary, write_atomic

KILLS = 100  # a kill at a random point of each write; about half land inside one
ROWS = 4000
STUDY = "s"
FILES = {EPOCHS_FILE: EPOCHS_SCHEMA, TRIALS_FILE: trials_schema(param_columns(param_types()))}


def make_table(schema: pa.Schema, version: int, rows: int = ROWS) -> pa.Table:
    """Version ``version`` of a table: every column filled, random floats so it does not compress away."""
    rng = np.random.default_rng(version)
    columns = {}
    for field in schema:
        typ = field.type
        if field.name == "study":
            columns[field.name] = pa.array([STUDY] * rows, typ)
        elif pa.types.is_string(typ):
            columns[field.name] = pa.array([f"{field.name}-{version}-{i}" for i in range(rows)], typ)
        elif pa.types.is_integer(typ):
            columns[field.name] = pa.array(np.arange(1, rows + 1) + version, typ)
        elif pa.types.is_floating(typ):
            columns[field.name] = pa.array(rng.random(rows), typ)
        elif pa.types.is_timestamp(typ):
            columns[field.name] = pa.array(np.arange(rows, dtype=np.int64) + 10**15 + version, typ)
        elif pa.types.is_list(typ) and pa.types.is_string(typ.value_type):
            columns[field.name] = pa.array([[f"{field.name}-{version}-{i}", "b"] for i in range(rows)], typ)
        else:
            raise TypeError(f"no generator for {field.name}: {typ}")
    return pa.table(columns, schema=schema)


def _which(table: pa.Table, candidates: dict[int, pa.Table]) -> int | None:
    return next((v for v, t in candidates.items() if table.equals(t)), None)


def _writer(tables_dir: Path, version: dict[str, pa.Table], ready: int) -> None:
    """Child: say it starts, write both tables (epochs first, like StudyTables), exit without cleanup."""
    try:
        os.write(ready, b"w")
        for name, table in version.items():
            write_atomic(tables_dir / name, table)
    finally:
        os._exit(0)


@pytest.mark.slow
def test_sigkill_at_random_points_never_exposes_a_partial_table(tmp_path):
    rng = random.Random(20250301)
    tables_dir = tmp_path / "tables"
    tables_dir.mkdir()
    versions = {0: {name: make_table(schema, 0) for name, schema in FILES.items()}}
    for name, table in versions[0].items():
        write_atomic(tables_dir / name, table)

    durations = []  # one version of both files, in this process
    for _ in range(3):
        start = time.perf_counter()
        for name, table in versions[0].items():
            write_atomic(tables_dir / name, table)
        durations.append(time.perf_counter() - start)
    write_seconds = statistics.median(durations)  # kills land at random points within this; mid_write checks it

    current = dict.fromkeys(FILES, 0)  # version on disk per file
    mid_write = unreadable = reads = finished_children = 0
    seen = {"old": 0, "new": 0}
    for _ in range(KILLS):
        target = max(current.values()) + 1
        versions[target] = {name: make_table(schema, target) for name, schema in FILES.items()}
        temps_before = {p.name for p in tables_dir.iterdir() if is_temporary(p.name)}
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _writer(tables_dir, versions[target], w)
        os.close(w)
        assert select.select([r], [], [], 30)[0], "writer never started"
        os.read(r, 1)
        deadline = time.perf_counter() + rng.uniform(0.0, write_seconds)
        while True:  # a reader polls the final names while the write runs
            for name in FILES:
                try:
                    table, _ = read_table(tables_dir / name, name)
                except Exception:  # noqa: BLE001 - any failure to read a final name counts
                    unreadable += 1
                    continue
                reads += 1
                candidates = {current[name]: versions[current[name]][name], target: versions[target][name]}
                assert _which(table, candidates) is not None, f"reader saw a {name} that is neither version"
            if time.perf_counter() >= deadline:
                break
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(r)
        finished_children += os.WIFEXITED(status)

        names = {p.name for p in tables_dir.iterdir()}
        assert names - set(FILES) <= {n for n in names if is_temporary(n)}, f"unexpected names {sorted(names)}"
        assert not any(is_temporary(n) for n in FILES)
        mid_write += bool({n for n in names if is_temporary(n)} - temps_before)
        for name in FILES:
            try:
                table, _ = read_table(tables_dir / name, name)
            except Exception:  # noqa: BLE001
                unreadable += 1
                continue
            found = _which(table, {current[name]: versions[current[name]][name], target: versions[target][name]})
            assert found is not None, f"{name} after kill is neither version {current[name]} nor {target}"
            seen["new" if found == target else "old"] += 1
            current[name] = found
        assert current[TRIALS_FILE] <= current[EPOCHS_FILE]  # epochs is written first
        for old in [v for v in versions if v not in current.values()]:
            del versions[old]

    leftovers = sorted(p.name for p in tables_dir.iterdir() if is_temporary(p.name))
    print(
        f"\nkills={KILLS} write={write_seconds * 1e3:.1f}ms mid_write={mid_write} leftover_temps={len(leftovers)} "
        f"unreadable={unreadable} old_version={seen['old']} new_version={seen['new']} "
        f"concurrent_reads={reads} children_finished_before_kill={finished_children}"
    )
    assert unreadable == 0
    assert mid_write > 0, "no kill landed inside a write: the test did not exercise atomicity"
    assert seen["old"] > 0 and seen["new"] > 0

    tables = StudyTables(tables_dir, STUDY, "val_loss")  # opening removes what killed writers left
    assert sorted(p.name for p in tables_dir.iterdir()) == sorted(FILES)
    assert len(tables._epochs) == ROWS
    for name in FILES:
        assert read_table(tables_dir / name, name)[0].equals(versions[current[name]][name])
