"""A plain U-Net: an encoder of ``depth`` stride-2 stages, a mirrored decoder with skips, a 1x1 head.

GroupNorm throughout (binary trains at batch 1, where BatchNorm is unsound). Inputs must be multiples of
``2**depth`` in H and W; the fixed collate pads to multiples of 32, which covers every depth up to 5.

Memory: ``checkpoint_levels=k`` recomputes the stages at the k finest resolutions during backward instead of
keeping their activations (``torch.utils.checkpoint``, non-reentrant). Level 0 (full resolution: the stem, the
last decoder stage and the head) holds about half of what a training step saves, at a sixth of the
convolution FLOPs. Parameter names do not change, so checkpoints load either way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from models.unet_shape import check_shape, widths


def _groups(channels: int) -> int:
    g = min(8, channels)
    while channels % g:
        g -= 1
    return g


class ConvBlock(nn.Sequential):
    """Two (3x3 conv, GroupNorm, SiLU) layers."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(_groups(out_channels), out_channels),
            nn.SiLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(_groups(out_channels), out_channels),
            nn.SiLU(inplace=True),
        )


class Down(nn.Sequential):
    """2x2 max-pool then a ConvBlock: (B, Cin, H, W) -> (B, Cout, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.MaxPool2d(2), ConvBlock(in_channels, out_channels))


class Up(nn.Module):
    """Nearest 2x upsample + 1x1 conv, concatenate the skip, ConvBlock: -> (B, Cout, 2H, 2W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_channels, out_channels, 1)
        )
        self.block = ConvBlock(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)  # (B, Cout, 2H, 2W)
        out: torch.Tensor = self.block(torch.cat([x, skip], dim=1))  # cat -> (B, 2 Cout, 2H, 2W)
        return out


class UNet(nn.Module):
    """U-Net with widths ``base_channels * 2**i`` for i = 0..depth (``models.unet_shape``, which also counts its
    parameters without building it).

    Shape: (B, in_channels, H, W) -> (B, out_channels, H, W), H and W multiples of ``2**depth``.

    Level i works at 1 / 2**i of the input size: level 0 is the stem, the last decoder stage and the head;
    level i >= 1 is ``downs[i - 1]`` (pool, then its block at level i) and the decoder stage at level i.
    ``checkpoint_levels`` in 0..depth + 1 recomputes levels 0..checkpoint_levels - 1 in backward (training only).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 16,
        depth: int = 4,
        *,
        checkpoint_levels: int = 0,
    ) -> None:
        super().__init__()
        check_shape(in_channels, out_channels, base_channels, depth)
        w = widths(base_channels, depth)
        self.depth = depth
        self.stride = 2**depth
        self.checkpoint_levels = checkpoint_levels
        self.stem = ConvBlock(in_channels, w[0])
        self.downs = nn.ModuleList(Down(w[i], w[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(Up(w[i + 1], w[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(w[0], out_channels, 1)

    @property
    def checkpoint_levels(self) -> int:
        """Levels recomputed in backward; settable on a built network (a compiled one recompiles on change)."""
        return self._checkpoint_levels

    @checkpoint_levels.setter
    def checkpoint_levels(self, levels: int) -> None:
        if not 0 <= levels <= self.depth + 1:
            raise ValueError(f"checkpoint_levels must be in 0..{self.depth + 1} (depth + 1), got {levels}")
        self._checkpoint_levels = int(levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.stride or x.shape[-1] % self.stride:
            raise ValueError(f"H, W must be multiples of {self.stride}, got {tuple(x.shape[-2:])}; pad the input")
        skips = [self._level(0, self.stem, x)]  # (B, C0, H, W)
        for i, down in enumerate(self.downs):
            skips.append(self._level(i + 1, down, skips[-1]))  # (B, C_{i+1}, H / 2**(i+1), W / 2**(i+1))
        x = skips.pop()  # bottleneck (B, C_depth, H / 2**depth, W / 2**depth)
        for up in self.ups[:-1]:
            x = self._level(len(skips) - 1, up, x, skips.pop())  # one level up, widths halve
        return self._level(0, self._top, x, skips.pop())  # (B, out_channels, H, W)

    def _top(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.ups[-1](x, skip))  # last decoder stage and head: (B, out_channels, H, W)
        return out

    def _level(self, level: int, fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        if level < self.checkpoint_levels and torch.is_grad_enabled():
            recomputed: torch.Tensor = checkpoint(fn, *inputs, use_reentrant=False)
            return recomputed
        return fn(*inputs)
