"""Activation memory per input pixel of the U-Net, measured on CPU, so GPU memory is tracked without a GPU.

For every (base, depth) the full preset may pick (and the multiclass widths we would like back), one training
step's forward is run under autograd's saved-tensor hooks: the bytes saved for backward, each storage counted
once, parameters excluded. Two sizes are measured and the per-pixel figure is the slope, so constant terms
(weight copies, per-sample GroupNorm statistics) drop out. "bf16" applies CUDA autocast's casts for the ops the
U-Net uses (conv in bf16, GroupNorm in fp32, the rest in their input dtype): CPU autocast keeps GroupNorm in
bf16 and would understate the GPU's figure. A second pass takes the peak allocated over forward and backward
from the profiler's allocator events: what a device must hold, which with checkpointing exceeds the saved bytes
by the stage being recomputed. Prints bytes per pixel and GiB for the task's widest full-scale batch against
the H200's 139 GiB less 15% headroom. Compiled variants measure Inductor's CPU partition, which follows the
same rules as on CUDA (its min-cut decides what to save), but its buffer reuse is the CPU code's.

    python -m bench.memory                        # eager: before (fp32, bf16) and after (bf16 + options)
    python -m bench.memory --configs 16:5 --compiled   # also Inductor's partition (slow on CPU)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from models.compiled import compile_network
from models.modes import mode_for
from models.unet import UNet
from study.presets import FULL

H200_GIB = 139.0
HEADROOM = 0.15
WIDEST = {"binary": (1, 640, 12_800), "multiclass": (16, 640, 12_800)}  # (B, H, W) at full scale
EXTRA_BASES = {"multiclass": (16, 24)}  # widths the full preset dropped for memory; measured to bring them back
SIZES = ((64, 1024), (64, 2048))  # (H, W) for the slope: activations dwarf weights and their gradients


class _Bf16Conv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(torch.bfloat16)
        return self._conv_forward(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), bias)


class _Fp32GroupNorm(nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float())


def cuda_bf16_casts(net: nn.Module) -> nn.Module:
    """Give ``net`` CUDA bf16 autocast's casts for its ops, on any device: conv in bf16, GroupNorm in fp32.

    Everything else (SiLU, max-pool, upsample) runs in its input's dtype and cat promotes, as under CUDA
    autocast. Written into the modules rather than as a mode, so checkpointing recomputes with the same casts
    and Inductor traces them. In place; parameters stay fp32.
    """
    for m in net.modules():
        if type(m) is nn.Conv2d:
            m.__class__ = _Bf16Conv2d
        elif type(m) is nn.GroupNorm:
            m.__class__ = _Fp32GroupNorm
    return net


def saved_bytes(net: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd keeps for backward after ``net(x)``: distinct storages, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            storages[s.data_ptr()] = max(storages.get(s.data_ptr(), 0), s.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(x)
    del out
    return sum(storages.values())


def peak_bytes(net: nn.Module, x: torch.Tensor) -> int:
    """Peak bytes allocated over one forward and backward, from the profiler's allocator events.

    Counts everything the step allocates (activations, recomputed stages, gradients, Inductor's buffers),
    not what existed before it (parameters, the input). CPU's allocator does not cache, so this is live bytes.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = net(x)
        out.float().square().mean().backward()
    del out
    net.zero_grad(set_to_none=True)
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = [e["args"] for e in json.loads(trace.read_text())["traceEvents"] if e.get("name") == "[memory]"]
    before = events[0]["Total Allocated"] - events[0]["Bytes"]
    return max(e["Total Allocated"] for e in events) - before


def per_pixel(measure: Callable[[nn.Module, torch.Tensor], int], net: nn.Module) -> float:
    """Slope of ``measure`` between the two SIZES: bytes per input pixel, constants removed."""
    (h1, w1), (h2, w2) = SIZES
    torch.manual_seed(0)
    a = measure(net, torch.rand(1, 1, h1, w1))
    b = measure(net, torch.rand(1, 1, h2, w2))
    return (b - a) / (h2 * w2 - h1 * w1)


@dataclass(frozen=True)
class Variant:
    label: str
    precision: str
    checkpoint_levels: int = 0
    compiled: bool = False


VARIANTS = (
    Variant("eager fp32 (before)", "fp32"),
    Variant("eager bf16 (before)", "bf16"),
    Variant("eager bf16 + checkpoint 1", "bf16", checkpoint_levels=1),
    Variant("eager bf16 + checkpoint 2", "bf16", checkpoint_levels=2),
)
COMPILED_VARIANTS = (
    Variant("compiled bf16", "bf16", compiled=True),
    Variant("compiled bf16 + checkpoint 1", "bf16", checkpoint_levels=1, compiled=True),
    Variant("compiled bf16 + checkpoint 2", "bf16", checkpoint_levels=2, compiled=True),
)


def measure_variant(base: int, depth: int, out_channels: int, variant: Variant) -> tuple[float, float]:
    """(saved bytes per pixel, peak bytes per pixel)."""
    net = UNet(1, out_channels, base, depth, checkpoint_levels=variant.checkpoint_levels)
    if variant.precision == "bf16":
        cuda_bf16_casts(net)
    if variant.compiled:
        compile_network(net)
        per_pixel(peak_bytes, net)  # warm-up: compile at both sizes before measuring
    return per_pixel(saved_bytes, net), per_pixel(peak_bytes, net)


def preset_configs() -> list[tuple[str, int, int]]:
    configs = []
    for task, tp in FULL.tasks.items():
        bases = sorted(set(tp.base_channels) | set(EXTRA_BASES.get(task, ())))
        for base in bases:
            for depth in range(tp.depths[0], tp.depths[1] + 1):
                configs.append((task, base, depth))
    return configs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", help="only these base:depth pairs, comma-separated (default: the full preset's)")
    p.add_argument("--tasks", default="binary,multiclass", help="tasks to list (default: both)")
    p.add_argument("--compiled", action="store_true", help="also measure the compiled network (slow on CPU)")
    args = p.parse_args(argv)
    os.environ.setdefault("KINETO_LOG_LEVEL", "99")  # the profiler's start/stop lines would interleave the table
    configs = [c for c in preset_configs() if c[0] in args.tasks.split(",")]
    if args.configs:
        wanted = {tuple(int(v) for v in c.split(":")) for c in args.configs.split(",")}
        configs = [c for c in configs if c[1:] in wanted]
    variants = VARIANTS + (COMPILED_VARIANTS if args.compiled else ())
    budget = H200_GIB * (1 - HEADROOM) * 2**30
    print(f"bytes per input pixel on CPU (slope over (H, W) = {SIZES[0]} and {SIZES[1]}): saved for backward")
    print("(saved-tensor hooks) and peak allocated over forward + backward (profiler); widest full-scale batch")
    print(f"binary 1x640x12800, multiclass 16x640x12800; fits: peak <= {H200_GIB:.0f} GiB less {HEADROOM:.0%}")
    print(f"{'task':10s} {'base':>4s} {'depth':>5s}  {'variant':26s} {'saved B/px':>10s} {'peak B/px':>9s} "
          f"{'widest GiB saved/peak':>21s}  fits")  # fmt: skip
    for task, base, depth in configs:
        px = math.prod(WIDEST[task])
        for v in variants:
            saved, peak = measure_variant(base, depth, mode_for(task).out_channels, v)
            print(
                f"{task:10s} {base:4d} {depth:5d}  {v.label:26s} {saved:10.0f} {peak:9.0f} "
                f"{saved * px / 2**30:10.1f} /{peak * px / 2**30:7.1f}  {'yes' if peak * px <= budget else 'NO'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
