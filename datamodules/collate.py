"""The fixed collate: one function for both tasks and every trial; never a hyperparameter.

It pads every sample of a batch to the batch's largest H and W, each rounded up to a multiple of 32 (the
deepest network stride): images with paper, labels with ``IGNORE_INDEX``. Loss and metrics ignore that one
sentinel, so padding never counts. Grouping similar widths is the batch sampler's job (``batching.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from datamodules.labels import IGNORE_INDEX

if TYPE_CHECKING:
    from datamodules.synth import Sample

PAPER = 1.0  # image value of blank paper after scaling uint8 to [0, 1]
STRIDE = 32  # 2**5: the deepest U-Net stride; padded sizes are multiples of it


@dataclass
class Batch:
    """A padded batch. Lightning moves every tensor field to the device.

    Shapes: images (B, 1, H, W) float32 in [0, 1], 1 = paper; labels (B, H, W) int64, IGNORE_INDEX on
    padding; sizes (B, 2) int64, the original (H, W); curve_rows (B, K, W) float32, NaN where a curve is
    absent or padded; curve_classes (B, K) int64, -1 for padded curve slots; curve_tracks (B, K, 2) float32,
    each curve's track (top row, bottom row), NaN where padded; curve_scored (B, K, W) bool, columns where a
    curve is visible as itself, False where padded; curve_laps (B, K, W) int8, wrap lap, 0 where padded.
    """

    images: torch.Tensor
    labels: torch.Tensor
    sizes: torch.Tensor
    curve_rows: torch.Tensor
    curve_classes: torch.Tensor
    curve_tracks: torch.Tensor
    curve_scored: torch.Tensor
    curve_laps: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]


def padded_size(n: int) -> int:
    return -(-n // STRIDE) * STRIDE


def collate(samples: Sequence[Sample]) -> Batch:
    b = len(samples)
    h = padded_size(max(s.image.shape[0] for s in samples))
    w = padded_size(max(s.image.shape[1] for s in samples))
    k = max(len(s.curve_classes) for s in samples)

    images = np.full((b, 1, h, w), 255, dtype=np.uint8)  # (B, 1, H, W), paper everywhere
    labels = np.full((b, h, w), IGNORE_INDEX, dtype=np.uint8)  # (B, H, W), ignored everywhere
    curve_rows = np.full((b, k, w), np.nan, dtype=np.float32)  # (B, K, W)
    curve_classes = np.full((b, k), -1, dtype=np.int64)  # (B, K)
    curve_tracks = np.full((b, k, 2), np.nan, dtype=np.float32)  # (B, K, 2)
    curve_scored = np.zeros((b, k, w), dtype=bool)  # (B, K, W)
    curve_laps = np.zeros((b, k, w), dtype=np.int8)  # (B, K, W)
    for i, s in enumerate(samples):
        sh, sw = s.image.shape
        nk = len(s.curve_classes)
        images[i, 0, :sh, :sw] = s.image
        labels[i, :sh, :sw] = s.label
        curve_rows[i, :nk, :sw] = s.curve_rows
        curve_classes[i, :nk] = s.curve_classes
        curve_tracks[i, :nk] = s.curve_tracks
        curve_scored[i, :nk, :sw] = s.curve_scored
        curve_laps[i, :nk, :sw] = s.curve_laps

    return Batch(
        images=torch.from_numpy(images).float().div_(255.0),
        labels=torch.from_numpy(labels).long(),
        sizes=torch.tensor([s.image.shape for s in samples], dtype=torch.int64).reshape(b, 2),
        curve_rows=torch.from_numpy(curve_rows),
        curve_classes=torch.from_numpy(curve_classes),
        curve_tracks=torch.from_numpy(curve_tracks),
        curve_scored=torch.from_numpy(curve_scored),
        curve_laps=torch.from_numpy(curve_laps),
    )
