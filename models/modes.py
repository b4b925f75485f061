"""The task mode, decided in one place: output channels, metric classes, activation and decision rule.

Binary: logits (B, 1, H, W), sigmoid, threshold 0.5; metrics see 2 classes (0 background, 1 curve).
Multiclass: logits (B, 3, H, W), softmax, argmax; classes 0 background, 1 curve A, 2 curve B.
Targets are (B, H, W) int64 in both modes, with ``IGNORE_INDEX`` where a pixel does not count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from datamodules.labels import TASK_SPECS, TaskSpec, task_spec
from models.unet_shape import logit_channels


@dataclass(frozen=True)
class TaskMode:
    """Shapes and rules of one task. ``curve_classes`` are the foreground classes averaged into ``_fg``."""

    name: str
    out_channels: int
    num_classes: int
    curve_classes: tuple[int, ...]

    @property
    def is_binary(self) -> bool:
        return self.out_channels == 1

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-class probabilities in float32. Shape: (B, out_channels, H, W) -> (B, num_classes, H, W)."""
        logits = logits.float()
        if self.is_binary:
            p = torch.sigmoid(logits)  # (B, 1, H, W)
            return torch.cat([1.0 - p, p], dim=1)  # (B, 2, H, W)
        return logits.softmax(dim=1)

    def log_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Stable per-class log-probabilities in float32. Shape: (B, C, H, W) -> (B, num_classes, H, W)."""
        x = logits.float()
        if self.is_binary:
            return torch.cat([F.logsigmoid(-x), F.logsigmoid(x)], dim=1)  # (B, 2, H, W)
        return x.log_softmax(dim=1)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Hard labels: threshold 0.5 (binary) or argmax (multiclass). Shape: (B, C, H, W) -> (B, H, W)."""
        if self.is_binary:
            return (logits[:, 0] > 0).long()  # sigmoid(x) > 0.5  <=>  x > 0
        return logits.argmax(dim=1)


def _mode(spec: TaskSpec) -> TaskMode:
    """Two classes are one sigmoid channel; more are a softmax over one channel each."""
    return TaskMode(spec.name, logit_channels(spec.num_classes), spec.num_classes, spec.curve_classes)


MODES: dict[str, TaskMode] = {name: _mode(spec) for name, spec in TASK_SPECS.items()}


def mode_for(task: str | TaskMode) -> TaskMode:
    """The mode of a task name; ValueError names the allowed ones."""
    if isinstance(task, TaskMode):
        return task
    return MODES[task_spec(task).name]
