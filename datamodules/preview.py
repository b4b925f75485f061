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
import numpy.typing as npt
from PIL import Image

from datamodules.cli import Exit, Parser, UsageError, number_in, whole_number
from datamodules.labels import IGNORE_INDEX, TASKS
from datamodules.synth import render

COLOURS = {1: (230, 25, 25), 2: (30, 60, 230), IGNORE_INDEX: (240, 210, 0)}


def write_png(path: Path, rgb: npt.NDArray[np.uint8]) -> None:
    """Write an (H, W, 3) uint8 array as an 8-bit RGB PNG."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    Image.fromarray(rgb, mode="RGB").save(path, format="PNG", compress_level=9)


def overlay(image: npt.NDArray[np.uint8], label: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
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


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m datamodules.preview", description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, choices=TASKS, help="label task of the instance")
    p.add_argument("--index", type=whole_number(0), required=True, help="instance index within (seed, task)")
    p.add_argument("--out", type=Path, required=True, help="output PNG path")
    p.add_argument("--seed", type=whole_number(0), default=0, help="dataset seed (default 0)")
    p.add_argument("--scale", type=number_in(0.05, 4), default=1.0, help="size scale in [0.05, 4] (default 1.0)")
    p.add_argument("--crop", type=_crop, default=None, help="keep columns X0:X1 only (for wide rasters)")
    p.add_argument(
        "--every", type=whole_number(1), default=1, help="keep every N-th row and column (downscale, default 1)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        s = render(args.index, seed=args.seed, task=args.task, scale=args.scale)
        image, label = s.image, s.label
        if args.crop is not None:
            a, b = args.crop
            if a >= image.shape[1]:
                raise UsageError(f"--crop starts at {a} but the raster is {image.shape[1]} columns wide")
            image, label = image[:, a:b], label[:, a:b]
        image, label = image[:: args.every, :: args.every], label[:: args.every, :: args.every]
        try:
            write_png(args.out, overlay(image, label))
        except OSError as e:
            raise UsageError(f"cannot write {args.out}: {e.strerror}") from None
    except UsageError as exc:
        print(f"preview: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    h, w = s.image.shape
    print(f"wrote {args.out} ({w} x {h} px, width x height; {len(s.curve_classes)} curves)")
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
