"""Dataset folders in the on-disk layout (``datamodules.layout``): exported from the generator, or built by hand
one raster at a time, for the tests of the check, the data module and ``study.run --data``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.export import Export, export
from datamodules.layout import IMAGES, LABELS

TINY_SCALE = 0.05  # rasters of about 160-640 x 24-32 px


def exported(out: Path, task: str, count: int, *, seed: int = 0, rescan: bool = False, fmt: str = "png") -> Path:
    """Instances 0..count-1 of (seed, task) at ``TINY_SCALE``, written as ``datamodules.export`` writes them."""
    export(Export(task, seed, TINY_SCALE, fmt, rescan, count), out, progress=False)
    return out


def curve_label(h: int, w: int, rows: tuple[int, ...] = (8,), cls: int = 1) -> np.ndarray:
    """(H, W) uint8 label with one 2-px horizontal curve of ``cls`` at each of ``rows``."""
    label = np.zeros((h, w), np.uint8)
    for r in rows:
        label[r : r + 2] = cls
    return label


def write_pair(root: Path, name: str, image: np.ndarray | Image.Image, label: np.ndarray | Image.Image) -> Path:
    """images/NAME.png and labels/NAME.png (arrays as 8-bit grey, or Pillow images as they are)."""
    for sub, data in ((IMAGES, image), (LABELS, label)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        im = data if isinstance(data, Image.Image) else Image.fromarray(np.asarray(data, np.uint8))
        im.save(root / sub / f"{name}.png")
    return root


def hand_folder(root: Path, n: int = 3, h: int = 24, w: int = 96) -> Path:
    """``n`` plain rasters (paper with one dark curve) and their binary labels; split by the hash of the name."""
    for i in range(n):
        label = curve_label(h, w, rows=(6 + i,))
        image = np.where(label > 0, 20, 250).astype(np.uint8)
        write_pair(root, f"scan_{i}", image, label)
    (root / "split.csv").write_text("".join(f"scan_{i},{'val' if i == 0 else 'train'}\n" for i in range(n)))
    return root
