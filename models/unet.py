"""A plain U-Net: an encoder of ``depth`` stride-2 stages, a mirrored decoder with skips, a 1x1 head.

GroupNorm throughout (binary trains at batch 1, where BatchNorm is unsound). Inputs must be multiples of
``2**depth`` in H and W; the fixed collate pads to multiples of 32, which covers every depth up to 5.
"""

from __future__ import annotations

import torch
from torch import nn

MAX_DEPTH = 5


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
        return self.block(torch.cat([x, skip], dim=1))  # cat -> (B, 2 Cout, 2H, 2W)


class UNet(nn.Module):
    """U-Net with widths ``base_channels * 2**i`` for i = 0..depth.

    Shape: (B, in_channels, H, W) -> (B, out_channels, H, W), H and W multiples of ``2**depth``.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base_channels: int = 16, depth: int = 4) -> None:
        super().__init__()
        if not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"depth must be in 1..{MAX_DEPTH}, got {depth}")
        if base_channels < 1 or out_channels < 1 or in_channels < 1:
            raise ValueError("in_channels, out_channels and base_channels must be positive")
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.stride = 2**depth
        self.stem = ConvBlock(in_channels, widths[0])
        self.downs = nn.ModuleList(Down(widths[i], widths[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.stride or x.shape[-1] % self.stride:
            raise ValueError(f"H, W must be multiples of {self.stride}, got {tuple(x.shape[-2:])}; pad the input")
        skips = [self.stem(x)]  # (B, C0, H, W)
        for down in self.downs:
            skips.append(down(skips[-1]))  # (B, C_{i+1}, H / 2**(i+1), W / 2**(i+1))
        x = skips.pop()  # bottleneck (B, C_depth, H / 2**depth, W / 2**depth)
        for up in self.ups:
            x = up(x, skips.pop())  # one level up, widths halve
        return self.head(x)  # (B, out_channels, H, W)
