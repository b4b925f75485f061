"""Packed training processes report per-process and aggregate throughput against one alone (CPU, tiny)."""

from __future__ import annotations

import json

import pytest

from bench.packing import main


@pytest.mark.slow  # starts 3 worker processes that each import torch and train: about 15 s
def test_two_processes_against_one(capsys, tmp_path):
    argv = ["--procs", "1,2", "--scale", "0.05", "--base-channels", "4", "--depth", "1", "--seconds", "1"]
    assert main([*argv, "--warmup", "1", "--compile", "off", "--json", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "1 process" in out and "2 processes" in out and "x one alone" in out
    rows = json.loads((tmp_path / "p.json").read_text())["rows"]
    assert [r["procs"] for r in rows] == [1, 2]
    assert rows[0]["ratio"] == 1.0
    assert len(rows[1]["per_process"]) == 2 and all(rate > 0 for rate in rows[1]["per_process"])
    assert abs(rows[1]["aggregate"] - sum(rows[1]["per_process"])) < 1e-9
