"""The U-Net maps (B, 1, H, W) to (B, C, H, W) for every depth and any multiple-of-32 size."""

from __future__ import annotations

import pytest
import torch

from models.modes import mode_for
from models.unet import UNet


@pytest.mark.parametrize("task", ["binary", "multiclass"])
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_output_shape(task, depth):
    torch.manual_seed(0)
    c = mode_for(task).out_channels
    net = UNet(1, c, base_channels=4, depth=depth).eval()
    with torch.no_grad():
        for h, w in [(32, 64), (64, 96), (96, 320)]:
            assert net(torch.rand(2, 1, h, w)).shape == (2, c, h, w)


@pytest.mark.parametrize("depth", [0, 6, -1])
def test_invalid_depth_raises(depth):
    with pytest.raises(ValueError, match="depth"):
        UNet(1, 1, base_channels=4, depth=depth)


def test_size_not_multiple_of_stride_raises():
    net = UNet(1, 1, base_channels=4, depth=3)
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.rand(1, 1, 32, 36))


def test_odd_base_channels_use_dividing_groups():
    net = UNet(1, 3, base_channels=6, depth=2)
    assert net(torch.rand(1, 1, 32, 32)).shape == (1, 3, 32, 32)
