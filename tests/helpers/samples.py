"""Hand-made samples with labels known exactly, and the logits that predict a label perfectly.

There are two makers, for two kinds of test:

- ``full_height_sample(h, w, ...)``: any size and number of curves, their one track the raster's full height, random
  ink on the curves, every side-channel field given explicitly (every column scored, on scale, curve infos), no
  ignored pixel. For the code that moves samples around (collate, padding) and must carry every field.
- ``one_track_sample(task, ...)``: two curves inside one fixed track (``TRACK``, rows 8-56 of 64) whose true
  centrelines are known to the half pixel, a small ignored blotch in the top corner, and the label optionally
  moved down by ``shift`` rows while the side channel stays. For the code that scores predictions (metrics,
  losses, the segmenter's steps).
"""

from __future__ import annotations

import numpy as np
import torch

from datamodules.labels import IGNORE_INDEX
from datamodules.synth import CurveInfo, Sample
from models.modes import mode_for

TRACK = (8.0, 56.0)  # one_track_sample's (top, bottom) row of the one track; height 48 px


def full_height_sample(h: int, w: int, *, seed: int = 0, n_curves: int = 2, task: str = "multiclass") -> Sample:
    """A hand-made sample: random ink, a 2 px curve per class at known rows, every column scored, on scale."""
    rng = np.random.default_rng(seed)
    image = np.full((h, w), 255, dtype=np.uint8)
    label = np.zeros((h, w), dtype=np.uint8)
    rows = np.full((n_curves, w), np.nan, dtype=np.float32)
    cols = np.arange(w)
    for k in range(n_curves):
        centre = (k + 1) * h / (n_curves + 1) + 2 * np.sin(cols / 7.0 + k)
        rows[k] = centre
        r = np.round(centre).astype(int)
        cls = 1 if task == "binary" else k + 1
        for dr in (0, 1):
            label[np.clip(r + dr, 0, h - 1), cols] = cls
            image[np.clip(r + dr, 0, h - 1), cols] = rng.integers(0, 60, size=w)
    classes = np.array([1 if task == "binary" else k + 1 for k in range(n_curves)], dtype=np.int64)
    tracks = np.tile(np.array([0.0, h - 1.0], dtype=np.float32), (n_curves, 1))
    return Sample(
        image=image,
        label=label,
        curve_rows=rows,
        curve_classes=classes,
        curve_tracks=tracks,
        curve_scored=np.ones((n_curves, w), dtype=bool),
        curve_laps=np.zeros((n_curves, w), dtype=np.int8),
        curves=tuple(
            CurveInfo("GR", "lin", 0.0, 150.0, "clip", -1, "solid" if c == 1 else "long") for c in classes.tolist()
        ),
    )


def one_track_sample(task: str, h: int = 64, w: int = 256, seed: int = 0, shift: int = 0) -> Sample:
    """A hand-built raster: two smooth 2-px-thick curves inside one track, with known centre rows.

    Each curve covers rows r0(x) and r0(x) + 1, so its true centreline is r0(x) + 0.5. The label is moved
    down by ``shift`` rows (the side channel is not), and a small ignored blotch sits in the top corner.
    """
    rng = np.random.default_rng(seed)
    x = np.arange(w)
    bases = (h * 5 // 16, h * 19 // 32)  # rows 20 and 38 at h = 64; binary: both curves class 1
    label = np.zeros((h, w), dtype=np.uint8)
    rows, classes = [], []
    for k, base in enumerate(bases):
        phase = rng.uniform(0, 2 * np.pi)
        r0 = np.round(base + 4 * np.sin(2 * np.pi * x / w + phase)).astype(int)  # (W,)
        cls = 1 if task == "binary" else k + 1
        label[r0 + shift, x] = cls
        label[r0 + 1 + shift, x] = cls
        rows.append(r0 + 0.5)
        classes.append(cls)
    label[:3, :5] = IGNORE_INDEX
    image = np.where(label == 0, 255, 40).astype(np.uint8)
    return Sample(
        image=image,
        label=label,
        curve_rows=np.stack(rows).astype(np.float32),
        curve_classes=np.array(classes, dtype=np.int64),
        curve_tracks=np.array([TRACK] * len(bases), dtype=np.float32),
    )


def oracle_logits(task: str, labels: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """Large one-hot logits of the labels (255 read as background). (B, H, W) -> (B, C, H, W)."""
    labels = torch.where(labels == IGNORE_INDEX, 0, labels)
    if mode_for(task).is_binary:
        return (scale * (2.0 * labels.float() - 1.0)).unsqueeze(1)
    onehot = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    return scale * (2.0 * onehot - 1.0)
