"""The U-Net's shape from its hyperparameters, torch-free: its checks, its widths, its output channels for a
number of classes, and its parameter count.

``models/unet.py`` builds the network from these; the study driver sizes checkpoints with ``parameter_count``
(``study/storage.py``) without importing torch. ``parameter_count`` mirrors the layers of ``models/unet.py``
one by one; ``tests/models/test_unet.py`` checks it against the built network.
"""

from __future__ import annotations

from datamodules.labels import task_spec

MAX_DEPTH = 5


def check_shape(in_channels: int, out_channels: int, base_channels: int, depth: int) -> None:
    """ValueError for a depth outside 1..MAX_DEPTH or a channel count below 1."""
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be in 1..{MAX_DEPTH}, got {depth}")
    if base_channels < 1 or out_channels < 1 or in_channels < 1:
        raise ValueError("in_channels, out_channels and base_channels must be positive")


def widths(base_channels: int, depth: int) -> list[int]:
    """The channels of levels 0..depth: ``base_channels * 2**i``."""
    return [base_channels * 2**i for i in range(depth + 1)]


def logit_channels(num_classes: int) -> int:
    """The network's output channels for ``num_classes`` classes (``models.modes``): two classes are one sigmoid
    channel; more are a softmax over one channel each."""
    return 1 if num_classes == 2 else num_classes


# Parameters of each layer of models/unet.py (GroupNorm: a weight and a bias per channel).
def _conv(in_channels: int, out_channels: int, kernel: int, *, bias: bool) -> int:
    return kernel * kernel * in_channels * out_channels + (out_channels if bias else 0)


def _conv_block(in_channels: int, out_channels: int) -> int:
    """``ConvBlock``: (3x3 conv without bias, GroupNorm, SiLU) twice."""
    return (
        _conv(in_channels, out_channels, 3, bias=False)
        + 2 * out_channels
        + _conv(out_channels, out_channels, 3, bias=False)
        + 2 * out_channels
    )


def _down(in_channels: int, out_channels: int) -> int:
    """``Down``: max-pool (no parameters), then a ConvBlock."""
    return _conv_block(in_channels, out_channels)


def _up(in_channels: int, out_channels: int) -> int:
    """``Up``: upsample and a 1x1 conv with bias (``reduce``), then a ConvBlock on the concatenated skip."""
    return _conv(in_channels, out_channels, 1, bias=True) + _conv_block(2 * out_channels, out_channels)


def parameter_count(in_channels: int = 1, out_channels: int = 1, base_channels: int = 16, depth: int = 4) -> int:
    """``sum(p.numel() for p in UNet(in_channels, out_channels, base_channels, depth).parameters())``, computed
    (ValueError as ``UNet``)."""
    check_shape(in_channels, out_channels, base_channels, depth)
    w = widths(base_channels, depth)
    return (
        _conv_block(in_channels, w[0])  # stem
        + sum(_down(w[i], w[i + 1]) for i in range(depth))  # downs
        + sum(_up(w[i + 1], w[i]) for i in reversed(range(depth)))  # ups
        + _conv(w[0], out_channels, 1, bias=True)  # head
    )


def task_parameter_count(task: str, base_channels: int, depth: int) -> int:
    """Parameters of the U-Net of a task (one input channel, as ``models.segmenter.Segmenter`` builds it);
    ValueError for an unknown task."""
    return parameter_count(1, logit_channels(task_spec(task).num_classes), base_channels, depth)
