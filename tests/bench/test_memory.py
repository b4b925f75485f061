"""bench/memory: saved and peak bytes per pixel, before and after, for the preset's networks (tiny sizes here);
its ``saved_bytes`` sees each level of activation checkpointing the U-Net is given."""

from __future__ import annotations

import pytest
import torch

import bench.memory as memory
from models.unet import UNet


@pytest.mark.slow  # about 50 s on 2 busy cores: the profiler's peak pass, three variants
def test_checkpointing_lowers_saved_and_peak_under_gpu_casts():
    before = memory.measure_variant(8, 3, 3, memory.Variant("before", "bf16"))
    after = memory.measure_variant(8, 3, 3, memory.Variant("after", "bf16", checkpoint_levels=1))
    fp32 = memory.measure_variant(8, 3, 3, memory.Variant("fp32", "fp32"))
    assert after[0] < 0.6 * before[0]  # saved: the full-resolution level is about half
    assert after[1] < before[1]  # peak, recomputation included
    assert before[0] < fp32[0]  # bf16 convolutions save less, GroupNorm stays fp32
    assert all(saved <= peak for saved, peak in (before, after, fp32))


def test_checkpointing_lowers_saved_bytes():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 64, 256)
    saved = [memory.saved_bytes(UNet(1, 1, 8, depth=3, checkpoint_levels=k), x) for k in range(4)]
    assert saved[0] > saved[1] > saved[2] > saved[3]
    assert saved[1] < 0.6 * saved[0]  # level 0 holds about half of the activations


@pytest.fixture
def small_sizes(monkeypatch):
    monkeypatch.setattr(memory, "SIZES", ((32, 128), (32, 256)))


@pytest.mark.usefixtures("small_sizes")
def test_table_lists_each_variant_for_the_chosen_configs(capsys):
    assert memory.main(["--configs", "8:4"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("multiclass")]
    assert len(rows) == len(memory.VARIANTS)
    assert all(row[1:3] == ["8", "4"] and row[-1] in ("yes", "NO") for row in rows)
