"""Write one synthetic raster with its label overlaid as a PNG (through Pillow).

    python -m datamodules.preview --task multiclass --index 0 --out preview.png [--seed 0] [--scale 1.0]

The PNG stacks the grey raster (top) over the same raster with the label in colour (bottom): class 1 red,
class 2 blue, ignore (255) yellow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.labels import IGNORE_INDEX, TASKS
from datamodules.synth import render

COLOURS = {1: (230, 25, 25), 2: (30, 60, 230), IGNORE_INDEX: (240, 210, 0)}


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 array as an 8-bit RGB PNG."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    Image.fromarray(rgb, mode="RGB").save(path, format="PNG", compress_level=9)


def overlay(image: np.ndarray, label: np.ndarray) -> np.ndarray:
    """(H, W) grey + (H, W) label -> (2H, W, 3): the raster above, the coloured label overlay below."""
    grey = np.repeat(image[:, :, None], 3, axis=2)
    over = grey.copy()
    for cls, rgb in COLOURS.items():
        over[label == cls] = rgb
    return np.concatenate([grey, over], axis=0)


def _crop(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"crop must be X0:X1 with integers, got {text!r}") from None
    if not 0 <= a < b:
        raise argparse.ArgumentTypeError(f"crop needs 0 <= X0 < X1, got {text!r}")
    return a, b


def _scale(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"scale must be a number, got {text!r}") from None
    if not 0.05 <= v <= 4:
        raise argparse.ArgumentTypeError(f"scale must be in [0.05, 4], got {text!r}")
    return v


def _nonneg(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m datamodules.preview", description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, choices=TASKS, help="label task of the instance")
    p.add_argument("--index", type=_nonneg, required=True, help="instance index within (seed, task)")
    p.add_argument("--out", type=Path, required=True, help="output PNG path")
    p.add_argument("--seed", type=_nonneg, default=0, help="dataset seed (default 0)")
    p.add_argument("--scale", type=_scale, default=1.0, help="size scale in [0.05, 4] (default 1.0)")
    p.add_argument("--crop", type=_crop, default=None, help="keep columns X0:X1 only (for wide rasters)")
    p.add_argument("--every", type=int, default=1, help="keep every N-th row and column (downscale, default 1)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.every < 1:
        parser.error("--every must be >= 1")
    s = render(args.index, seed=args.seed, task=args.task, scale=args.scale)
    image, label = s.image, s.label
    if args.crop is not None:
        a, b = args.crop
        if a >= image.shape[1]:
            parser.error(f"--crop starts at {a} but the raster is {image.shape[1]} columns wide")
        image, label = image[:, a:b], label[:, a:b]
    image, label = image[:: args.every, :: args.every], label[:: args.every, :: args.every]
    try:
        write_png(args.out, overlay(image, label))
    except OSError as e:
        print(f"error: cannot write {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({s.image.shape[0]}x{s.image.shape[1]}, {len(s.curve_classes)} curves)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
