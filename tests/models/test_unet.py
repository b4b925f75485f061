"""The U-Net maps (B, 1, H, W) to (B, C, H, W) for every depth and any multiple-of-32 size; its parameter count
is known without building it."""

from __future__ import annotations

import pytest
import torch

from datamodules.labels import TASKS
from models.modes import mode_for
from models.segmenter import Segmenter
from models.unet import UNet
from models.unet_shape import MAX_DEPTH, parameter_count, task_parameter_count


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


def _built(*args: int) -> int:
    with torch.device("meta"):  # shapes only, nothing allocated
        return sum(p.numel() for p in UNet(*args).parameters())


@pytest.mark.parametrize("depth", range(1, MAX_DEPTH + 1))
@pytest.mark.parametrize("base_channels", [1, 3, 6, 8, 16, 32])
@pytest.mark.parametrize(("in_channels", "out_channels"), [(1, 1), (1, 3), (3, 2), (2, 5)])
def test_parameter_count_is_the_built_networks(in_channels, out_channels, base_channels, depth):
    expected = _built(in_channels, out_channels, base_channels, depth)
    assert parameter_count(in_channels, out_channels, base_channels, depth) == expected


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(("base_channels", "depth"), [(4, 1), (8, 3), (16, 4), (32, 5), (6, 2)])
def test_a_tasks_parameter_count_is_the_segmenters(task, base_channels, depth):
    """Every parameter of the LightningModule is its network's (losses and metrics hold none)."""
    with torch.device("meta"):
        module = Segmenter(task, base_channels=base_channels, depth=depth)
    count = task_parameter_count(task, base_channels, depth)
    assert count == sum(p.numel() for p in module.parameters())
    assert count == _built(1, mode_for(task).out_channels, base_channels, depth)


@pytest.mark.parametrize(
    ("args", "match"),
    [((1, 1, 4, 0), "depth"), ((1, 1, 4, 6), "depth"), ((1, 1, 0, 2), "positive"), ((0, 1, 4, 2), "positive"),
     ((1, 0, 4, 2), "positive")],
)  # fmt: skip
def test_parameter_count_refuses_what_the_network_refuses(args, match):
    with pytest.raises(ValueError, match=match):
        UNet(*args)
    with pytest.raises(ValueError, match=match):
        parameter_count(*args)


def test_a_tasks_parameter_count_refuses_an_unknown_task():
    with pytest.raises(ValueError, match="unknown task"):
        task_parameter_count("nope", 8, 3)
