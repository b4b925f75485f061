"""runshape --ragged-steps: real sampler order over real rasters; prints the graphs compiled and throughput."""

from __future__ import annotations

import json

from bench.runshape import main


def test_ragged_steps_print_graphs_and_throughput(capsys, tmp_path):
    argv = ["--task", "binary", "--scale", "0.05", "--ragged-steps", "4", "--base-channels", "4", "--depth", "1"]
    assert main([*argv, "--compile", "off", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "graphs compiled: 0" in out.splitlines()  # eager: nothing compiled
    assert "ragged: 4 steps" in out and "img/s" in out
    row = json.loads((tmp_path / "r.json").read_text())["ragged"]
    assert row["steps"] == 4 and row["images_per_s"] > 0 and row["heights"] >= 1
