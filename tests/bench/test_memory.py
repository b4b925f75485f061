"""bench/memory: saved and peak bytes per pixel, before and after, for the preset's networks (tiny sizes here)."""

from __future__ import annotations

import pytest

import bench.memory as memory


def test_checkpointing_lowers_saved_and_peak_under_gpu_casts():
    before = memory.measure_variant(8, 3, 3, memory.Variant("before", "bf16"))
    after = memory.measure_variant(8, 3, 3, memory.Variant("after", "bf16", checkpoint_levels=1))
    fp32 = memory.measure_variant(8, 3, 3, memory.Variant("fp32", "fp32"))
    assert after[0] < 0.6 * before[0]  # saved: the full-resolution level is about half
    assert after[1] < before[1]  # peak, recomputation included
    assert before[0] < fp32[0]  # bf16 convolutions save less, GroupNorm stays fp32
    assert all(saved <= peak for saved, peak in (before, after, fp32))


@pytest.fixture
def small_sizes(monkeypatch):
    monkeypatch.setattr(memory, "SIZES", ((32, 128), (32, 256)))


@pytest.mark.usefixtures("small_sizes")
def test_table_lists_each_variant_for_the_chosen_configs(capsys):
    assert memory.main(["--configs", "8:4"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("multiclass")]
    assert len(rows) == len(memory.VARIANTS)
    assert all(row[1:3] == ["8", "4"] and row[-1] in ("yes", "NO") for row in rows)
