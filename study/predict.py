"""Apply a trained segmenter to one raster: ``python -m study.predict``.

    python -m study.predict --checkpoint CKPT --image scan.png [--out DIR]
    python -m study.predict --checkpoint CKPT --index 17 --task multiclass
    python -m study.predict --best runs/my-study --task binary --index 0

The checkpoint is loaded with ``weights_only=True`` (a Lightning checkpoint file, or the Ray checkpoint
directory that holds it); the image is padded through the fixed collate, segmented on the GPU if there is one
(else the CPU), and cropped back to its own size. Three files are written to ``--out``:

- ``classes.png``: the class map, one 8-bit palette pixel per image pixel whose value is the class
  (0 background, 1 curve / curve A, 2 curve B), coloured so that it can be looked at;
- ``overlay.png``: the raster in grey with the predicted classes tinted and the extracted curve points on top;
- ``curves.csv``: the extracted curve points ``column,class,row`` (``models.extraction``: per column, the
  probability-weighted centre row of every run of a curve class), the same extraction the metrics score.

Exit status 0, or 2 with one line for a missing or unreadable file, a file that is not an image, or a
checkpoint of the other task.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from datamodules.cli import Exit, Parser, UsageError, whole_number
from datamodules.labels import TASKS
from datamodules.preview import COLOURS, write_png
from datamodules.synth import render
from models.inference import LoadedCheckpoint, PredictError, Prediction, load_checkpoint, pick_device, segment
from results.query import TableError, best_trials

PAPER_RGB = (255, 255, 255)
TINT = 0.55  # weight of the class colour over a predicted pixel in the overlay


def read_image(path: Path) -> np.ndarray:
    """A raster file as (H, W) uint8 grey, 255 = paper; PredictError for a missing file or a non-image."""
    if not path.is_file():
        raise PredictError(f"no such image: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I", "I;16", "I;16B", "F"):  # 16-bit or float scans: stretch to 8 bits
                arr = np.asarray(im, dtype=np.float64)
                lo, hi = float(arr.min()), float(arr.max())
                return np.round(255 * (arr - lo) / max(hi - lo, 1e-12)).astype(np.uint8)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                back = Image.new("RGBA", im.size, (*PAPER_RGB, 255))  # transparent areas are paper
                im = Image.alpha_composite(back, im.convert("RGBA"))
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except (Image.UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise PredictError(f"{path} is not an image Pillow can read ({str(exc).splitlines()[0][:200]})") from None
    except OSError as exc:
        raise PredictError(f"cannot read image {path} ({exc})") from None


def class_map_png(classes: np.ndarray) -> Image.Image:
    """(H, W) class indices as an 8-bit palette image: pixel value = class, coloured for the eye."""
    palette = [*PAPER_RGB] * 256
    for cls, rgb in COLOURS.items():
        palette[3 * cls : 3 * cls + 3] = rgb
    im = Image.fromarray(np.ascontiguousarray(classes, dtype=np.uint8))  # mode L, values kept
    im.putpalette(palette)  # L -> P: the values become palette indices
    return im


def overlay(image: np.ndarray, prediction: Prediction) -> np.ndarray:
    """(H, W) grey + prediction -> (H, W, 3) uint8: classes tinted over the raster, curve points in colour."""
    rgb = np.repeat(image[:, :, None], 3, axis=2).astype(np.float32)  # (H, W, 3)
    for cls, colour in COLOURS.items():
        hit = prediction.classes == cls
        rgb[hit] = (1 - TINT) * rgb[hit] + TINT * np.asarray(colour, np.float32)
    out = rgb.round().astype(np.uint8)
    if prediction.curves:
        points = np.asarray(prediction.curves, dtype=np.float64)  # (M, 3): column, class, row
        cols, kinds = points[:, 0].astype(np.int64), points[:, 1].astype(np.int64)
        rows = np.clip(np.round(points[:, 2]), 0, image.shape[0] - 1).astype(np.int64)
        dark = np.zeros((256, 3), np.uint8)
        for cls, colour in COLOURS.items():
            dark[cls] = [c // 2 for c in colour]  # the centre line, darker than its class's tint
        out[rows, cols] = dark[kinds]
    return out


def write_outputs(out: Path, image: np.ndarray, prediction: Prediction) -> list[Path]:
    """Write classes.png, overlay.png and curves.csv into ``out`` (created); returns the three paths."""
    out.mkdir(parents=True, exist_ok=True)
    classes, over, table = out / "classes.png", out / "overlay.png", out / "curves.csv"
    class_map_png(prediction.classes).save(classes, format="PNG", optimize=True)
    write_png(over, overlay(image, prediction))
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["column", "class", "row"])
        writer.writerows((col, cls, repr(row)) for col, cls, row in prediction.curves)
    return [classes, over, table]


def best_checkpoint(study_dir: Path, task: str) -> Path:
    """The checkpoint of the best finished ``task`` trial of a study (``results.query.best_trials``)."""
    if not study_dir.is_dir():
        raise PredictError(f"no such study directory: {study_dir}")
    try:
        best = best_trials(study_dir)
    except (TableError, ValueError) as exc:
        raise PredictError(str(exc)) from None
    rows = best[best["task"] == task]
    if rows.empty:
        raise PredictError(f"{study_dir} has no finished {task} trial yet; wait for one, or pass --checkpoint")
    path = rows["checkpoint_path"].iloc[0]
    if pd.isna(path) or not str(path):
        trial = rows["trial_id"].iloc[0]
        raise PredictError(f"the best {task} trial {trial} of {study_dir} has no checkpoint recorded")
    return Path(str(path))


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m study.predict", description=__doc__.splitlines()[0])
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", type=Path, help="a checkpoint.ckpt, or the Ray checkpoint directory holding it")
    model.add_argument("--best", type=Path, metavar="STUDY_DIR", help="use the best --task trial of this study")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="a raster image file (PNG, TIFF, JPEG, ...), read as grey")
    source.add_argument("--index", type=whole_number(0), help="render synthetic instance N of --task instead")
    p.add_argument("--task", choices=TASKS, help="the task (needed with --index and --best; checked against the model)")
    p.add_argument("--seed", type=int, help="with --index: data seed (default: the model's training data)")
    p.add_argument("--scale", type=float, help="with --index: raster scale (default: the model's training data)")
    p.add_argument("--out", type=Path, help="output directory (default: predictions/<image name or task-index>)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: the GPU if there is one)")
    return p


def _render(index: int, task: str, ckpt: LoadedCheckpoint, seed: int | None, scale: float | None) -> np.ndarray:
    seed = int(ckpt.data.get("seed", 0)) if seed is None else seed
    scale = float(ckpt.data.get("scale", 1.0)) if scale is None else scale
    try:
        return render(index, seed=seed, task=task, scale=scale).image
    except ValueError as exc:
        raise PredictError(str(exc)) from None


def run(argv: Sequence[str] | None) -> str:
    """Everything ``main`` does; returns the line to print, raises PredictError."""
    args = build_parser().parse_args(argv)
    if (args.index is not None or args.best is not None) and args.task is None:
        raise PredictError("--task is needed with --index and with --best")
    if args.image is not None and (args.seed is not None or args.scale is not None):
        raise PredictError("--seed and --scale apply to --index only")
    if args.image is not None:
        image = read_image(args.image)  # before the model: a bad image fails fast
    path = best_checkpoint(args.best, args.task) if args.best is not None else args.checkpoint
    ckpt = load_checkpoint(path, pick_device(args.device))
    if args.task is not None and ckpt.task != args.task:
        raise PredictError(f"{ckpt.path} is a {ckpt.task} model, not {args.task}; pick a {args.task} checkpoint")
    if args.image is None:
        image = _render(args.index, ckpt.task, ckpt, args.seed, args.scale)
        name = f"{ckpt.task}-{args.index}"
    else:
        name = args.image.stem
    prediction = segment(ckpt, image)
    out = args.out if args.out is not None else Path("predictions") / name
    try:
        written = write_outputs(out, image, prediction)
    except OSError as exc:
        raise PredictError(f"cannot write to {out}: {exc.strerror or exc}") from None
    columns = len({c for c, _, _ in prediction.curves})
    return (
        f"{ckpt.task} model {ckpt.path} on {ckpt.device}: {image.shape[1]}x{image.shape[0]} px, "
        f"{len(prediction.curves)} curve points in {columns} columns; wrote {', '.join(str(p) for p in written)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        print(run(argv))
    except UsageError as exc:
        print(f"predict: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
