"""LAS 2.0 files checked the way the issue asks: a lasio round trip and the standard's conformity rules.

``check_las(path)`` reads a written file both as text (the sections and their order, as the standard lays them
out) and through ``lasio.read``, asserts the rules, and returns what lasio read:

- the mandatory sections ~V, ~W, ~C and ~A, ~A last; VERS 2.0 and WRAP NO in ~V;
- the well fields STRT, STOP, STEP and NULL, their units the index's;
- the index first in ~C and ~A, named DEPT, in feet or metres;
- a constant STEP, STRT and STOP multiples of it, and (STOP - STRT) / STEP + 1 data lines.

``assert_round_trip(values, path)`` checks that what lasio reads back equals what was written to 4 significant
digits (NaN where the file holds NULL).
"""

from __future__ import annotations

from pathlib import Path

import lasio
import numpy as np

MANDATORY = ("~V", "~W", "~C", "~A")


def check_las(path: Path) -> lasio.LASFile:
    text = path.read_text()
    sections = [line.strip()[:2].upper() for line in text.splitlines() if line.strip().startswith("~")]
    for name in MANDATORY:
        assert name in sections, f"{path}: no {name} section"
    assert sections[0] == "~V" and sections[-1] == "~A", f"{path}: sections in the order {sections}"
    las = lasio.read(str(path))
    assert str(las.version["VERS"].value) in ("2.0", "2"), las.version["VERS"]
    assert las.version["WRAP"].value == "NO"
    for field in ("STRT", "STOP", "STEP", "NULL"):
        assert field in las.well, f"{path}: no {field} in ~W"
    index = las.curves[0]
    assert index.mnemonic == "DEPT", f"{path}: the index is {index.mnemonic}, not DEPT"
    assert index.unit in ("F", "M"), f"{path}: index unit {index.unit!r}"
    for field in ("STRT", "STOP", "STEP"):
        assert las.well[field].unit == index.unit, (
            f"{path}: {field} in {las.well[field].unit!r}, DEPT in {index.unit!r}"
        )
    strt, stop, step = (float(las.well[f].value) for f in ("STRT", "STOP", "STEP"))
    assert step > 0
    for value in (strt, stop):
        assert abs(value / step - round(value / step)) < 1e-6, f"{path}: {value} is not a multiple of STEP {step}"
    depth = np.asarray(las.index, np.float64)
    n = round((stop - strt) / step) + 1
    assert depth.size == n, f"{path}: {depth.size} data lines, STRT/STOP/STEP say {n}"
    np.testing.assert_allclose(np.diff(depth), step, rtol=0, atol=1e-6)
    assert depth[0] == strt and depth[-1] == stop
    assert float(las.well["NULL"].value) == -999.25
    data_lines = [line for line in text.split("~A", 1)[1].splitlines()[1:] if line.strip()]
    assert len(data_lines) == n
    assert all(len(line.split()) == len(las.curves) for line in data_lines), f"{path}: a ragged ~A line"
    return las


def assert_round_trip(written: lasio.LASFile, path: Path) -> None:
    """Every curve of ``written`` equals its read-back in ``path`` to 4 significant digits, NULL as NaN."""
    read = lasio.read(str(path))
    assert [c.mnemonic for c in read.curves] == [c.mnemonic for c in written.curves]
    assert [c.unit for c in read.curves] == [c.unit for c in written.curves]
    for c in written.curves:
        want, got = np.asarray(c.data, np.float64), np.asarray(read[c.mnemonic], np.float64)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=c.mnemonic)
        ok = np.isfinite(want)
        np.testing.assert_allclose(got[ok], want[ok], rtol=5e-4, atol=1e-12, err_msg=c.mnemonic)
