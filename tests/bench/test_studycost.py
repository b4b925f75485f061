"""ASHA's expected epochs, exactly; the cost table from the committed measured file and from a device run."""

from __future__ import annotations

import json
from fractions import Fraction

from bench.studycost import asha_rungs, expected_epochs, main, simulate_ray_rule


def test_rungs_match_rays_milestones():
    assert asha_rungs(5, 3, 50) == [5, 15, 45]  # the full preset
    assert asha_rungs(1, 2, 6) == [1, 2, 4]  # the smoke preset
    assert asha_rungs(1, 2, 4) == [1, 2, 4]


def test_expected_epochs_top_third_continue():
    # 5 epochs for all, 10 more for a third, 30 more for a ninth, the last 5 for a 27th.
    assert expected_epochs(5, 3, 50) == 5 + Fraction(10, 3) + Fraction(30, 9) + Fraction(5, 27) == Fraction(320, 27)
    assert expected_epochs(1, 2, 4) == 1 + Fraction(1, 2) + Fraction(2, 4)


def test_ray_rule_promotes_first_arrivals():
    assert simulate_ray_rule(1, 5, 3, 50, runs=3) == 50  # alone, a trial is never stopped
    mean = simulate_ray_rule(16, 5, 3, 50, runs=200)
    assert float(expected_epochs(5, 3, 50)) < mean < 50
    assert mean == simulate_ray_rule(16, 5, 3, 50, runs=200)  # seeded


def test_cost_table_marks_measured_and_projected(capsys, tmp_path):
    run = {
        "task": "multiclass",
        "device": "NVIDIA H200",
        "typical": {"batch": "16x544x6400", "mpx_per_s": 80.0, "val_mpx_per_s": 200.0},
    }
    (tmp_path / "mc.json").write_text(json.dumps(run))
    written = tmp_path / "measured.json"
    assert main(["--simulate", "0", "--runshape", f"multiclass={tmp_path / 'mc.json'}", "--write", str(written)]) == 0
    out = capsys.readouterr().out
    assert "rungs 5/15/45" in out
    assert "expected epochs per trial 11.85 (= 320/27)" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()[:1] in (["binary"], ["multiclass"])}
    assert "measured" in rows["binary"] and "(110 min/run)" in rows["binary"]
    assert "measured" in rows["multiclass"] and "(550 min/run)" in rows["multiclass"]
    assert "total" in out
    measured = json.loads(written.read_text())
    assert measured["tasks"]["multiclass"]["train_mpx_per_s"] == 80.0
    assert measured["tasks"]["binary"]["status"] == "measured"  # the committed H200 figure, kept
