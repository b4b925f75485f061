"""Apply a trained segmenter to one raster: ``python -m study.predict``.

    python -m study.predict --checkpoint CKPT --image scan.png [--out DIR]
    python -m study.predict --checkpoint CKPT --index 17 --task multiclass
    python -m study.predict --best runs/my-study --task binary --index 0

The checkpoint is loaded with ``weights_only=True`` (a Lightning checkpoint file, or the Ray checkpoint
directory that holds it); the image is padded through the fixed collate, segmented on the GPU if there is one
(else the CPU), and cropped back to its own size. The files go to ``--out`` (default
``predictions/<image file name>-<task>``, so two tasks or two formats of one scan never share a folder); an
existing folder is refused unless ``--force``:

- ``classes.png``: the class map, one 8-bit palette pixel per image pixel whose value is the class
  (0 background, 1 curve / curve A, 2 curve B), coloured so that it can be looked at;
- ``overlay.png``: the raster in grey with the predicted classes tinted and the extracted curve points on top;
- ``curves.csv``: the extracted curve points ``column,class,row`` (``models.extraction``: per column, the
  probability-weighted centre row of every run of a curve class), the same extraction the metrics score;
- ``summary.csv``: the image, task, width, height, curve points, columns and ``warnings``: why the prediction
  may not mean much (a blank or tiny image, one far outside the training rasters' sizes, a colour scan), each
  also said on stderr.

With ``--registration REG.json --las OUT.las [--step 0.5]`` the registered curves are also written as LAS 2.0
and ``overlay.png`` shows them drawn back on the scan; ``--images DIR --registrations DIR --out DIR`` does a
folder (``study.predict_las``, README "From a scan to LAS").

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
import numpy.typing as npt
import pandas as pd
from PIL import Image

from datamodules.cli import Exit, Parser, UsageError, whole_number
from datamodules.labels import TASKS
from datamodules.preview import COLOURS, write_png
from datamodules.synth import render
from datamodules.synth.generate import FULL_H, FULL_W
from models.inference import LoadedCheckpoint, PredictError, Prediction, load_checkpoint, pick_device, segment
from results.plan import STUDY_FILE
from results.query import TableError, best_trials
from results.store import checkpoint_location, child, exists, fetched, is_uri, shown
from study import predict_las

PAPER_RGB = (255, 255, 255)
TINT = 0.55  # weight of the class colour over a predicted pixel in the overlay
COLOUR_SPREAD = 24  # grey levels between channels above which an image counts as in colour
BLANK_RANGE = 8  # an image whose pixels all lie within this many grey levels is blank
TINY_SIDE = 32  # the network's deepest stride: below it a raster is mostly padding


def read_image(path: Path) -> npt.NDArray[np.uint8]:
    """A raster file as (H, W) uint8 grey, 255 = paper; PredictError for a missing file or a non-image."""
    return read_scan(path)[0]


def read_scan(path: Path) -> tuple[npt.NDArray[np.uint8], bool]:
    """A raster file as (H, W) uint8 grey (255 = paper), and whether it was in colour (its channels differ).

    Raises:
        PredictError: a missing file or one that is not an image Pillow can read.
    """
    if not path.is_file():
        raise PredictError(f"no such image: {path}")
    im: Image.Image  # an ImageFile as opened; a plain Image once composited over paper
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I", "I;16", "I;16B", "F"):  # 16-bit or float scans: stretch to 8 bits
                arr = np.asarray(im, dtype=np.float64)
                lo, hi = float(arr.min()), float(arr.max())
                return np.round(255 * (arr - lo) / max(hi - lo, 1e-12)).astype(np.uint8), False
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                back = Image.new("RGBA", im.size, (*PAPER_RGB, 255))  # transparent areas are paper
                im = Image.alpha_composite(back, im.convert("RGBA"))
            colour = False
            if im.mode not in ("L", "1", "LA"):
                rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
                colour = bool(np.abs(np.diff(rgb, axis=2)).max(initial=0) > COLOUR_SPREAD)
            return np.asarray(im.convert("L"), dtype=np.uint8), colour
    except (Image.UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise PredictError(f"{path} is not an image Pillow can read ({str(exc).splitlines()[0][:200]})") from None
    except OSError as exc:
        raise PredictError(f"cannot read image {path} ({exc})") from None


def doubts(image: npt.NDArray[np.uint8], ckpt: LoadedCheckpoint, *, colour: bool = False) -> list[str]:
    """Why a prediction of ``image`` may not mean much: empty when it looks like what the model trained on.

    Blank (no contrast), tiny, far outside the training rasters' heights or widths (the generator's range at the
    checkpoint's training scale, halved and doubled), or colour where training was grey.
    """
    said = []
    h, w = image.shape
    if int(image.max()) - int(image.min()) < BLANK_RANGE:
        said.append(f"blank: every pixel within {BLANK_RANGE} grey levels; no curve can be read from it")
    scale = float(ckpt.data.get("scale", 1.0))
    (h_lo, h_hi), (w_lo, w_hi) = ((round(a * scale), round(b * scale)) for a, b in (FULL_H, FULL_W))
    if min(h, w) < TINY_SIDE:
        said.append(f"tiny: {w} x {h} px; the network needs at least {TINY_SIDE} px each way")
    else:
        if not h_lo / 2 <= h <= 2 * h_hi:
            said.append(f"height {h} px is far outside the training rasters' {h_lo}-{h_hi} px")
        if not w_lo / 2 <= w <= 2 * w_hi:
            said.append(f"width {w} px is far outside the training rasters' {w_lo}-{w_hi} px")
    if colour:
        said.append("colour: the model trained on grey rasters; the image was converted to grey")
    return said


def class_map_png(classes: npt.NDArray[np.uint8]) -> Image.Image:
    """(H, W) class indices as an 8-bit palette image: pixel value = class, coloured for the eye."""
    palette = [*PAPER_RGB] * 256
    for cls, rgb in COLOURS.items():
        palette[3 * cls : 3 * cls + 3] = rgb
    im = Image.fromarray(np.ascontiguousarray(classes, dtype=np.uint8))  # mode L, values kept
    im.putpalette(palette)  # L -> P: the values become palette indices
    return im


def overlay(image: npt.NDArray[np.uint8], prediction: Prediction) -> npt.NDArray[np.uint8]:
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


def write_outputs(out: Path, image: npt.NDArray[np.uint8], prediction: Prediction) -> list[Path]:
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


def write_summary(
    out: Path, source: str, task: str, size: tuple[int, int], prediction: Prediction, warnings: list[str]
) -> Path:
    """``summary.csv``: one row per image (image, task, width, height, curve points, columns, warnings)."""
    path = out / "summary.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "task", "width", "height", "curve_points", "columns", "warnings"])
        columns = len({c for c, _, _ in prediction.curves})
        writer.writerow([source, task, *size, len(prediction.curves), columns, "; ".join(warnings)])
    return path


def best_checkpoint(study: str, task: str) -> str:
    """The checkpoint of the best finished ``task`` trial of a study (``results.query.best_trials``): a path, or
    its URI for a study in object storage."""
    if is_uri(study):
        try:
            found = exists(child(study, STUDY_FILE))
        except (OSError, ValueError) as exc:
            raise PredictError(f"{shown(study)}: {str(exc).strip().splitlines()[0]}") from None
        if not found:
            raise PredictError(f"no study at {shown(study)} (no {STUDY_FILE}); give STORAGE_URI/STUDY_NAME")
    elif not Path(study).is_dir():
        raise PredictError(f"no such study directory: {study}")
    try:
        best = best_trials(study)
    except (TableError, ValueError) as exc:
        raise PredictError(str(exc)) from None
    rows = best[best["task"] == task]
    if rows.empty:
        raise PredictError(f"{shown(study)} has no finished {task} trial yet; wait for one, or pass --checkpoint")
    path = rows["checkpoint_path"].iloc[0]
    if pd.isna(path) or not str(path):
        trial = rows["trial_id"].iloc[0]
        raise PredictError(f"the best {task} trial {trial} of {shown(study)} has no checkpoint recorded")
    return checkpoint_location(study, str(path)) if is_uri(study) else str(path)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m study.predict", description=__doc__.splitlines()[0])
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", type=Path, help="a checkpoint.ckpt, or the Ray checkpoint directory holding it")
    model.add_argument(
        "--best", metavar="STUDY_DIR", help="use the best --task trial of this study (a path, or an s3://... URI)"
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="a raster image file (PNG, TIFF, JPEG, ...), read as grey")
    source.add_argument("--index", type=whole_number(0), help="render synthetic instance N of --task instead")
    p.add_argument("--task", choices=TASKS, help="the task (needed with --index and --best; checked against the model)")
    p.add_argument("--seed", type=int, help="with --index: data seed (default: the model's training data)")
    p.add_argument("--scale", type=float, help="with --index: raster scale (default: the model's training data)")
    p.add_argument(
        "--out", type=Path, help="output directory (default: predictions/<image file name>-<task>); must be new"
    )
    p.add_argument("--force", action="store_true", help="replace the files of an existing --out")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: the GPU if there is one)")
    predict_las.add_flags(p, source)
    return p


def _render(
    index: int, task: str, ckpt: LoadedCheckpoint, seed: int | None, scale: float | None
) -> npt.NDArray[np.uint8]:
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
    las = predict_las.request(args)  # None without LAS flags; the registrations read and checked
    colour = False
    if args.image is not None:
        image, colour = read_scan(args.image)  # before the model: a bad image fails fast
    path = best_checkpoint(args.best, args.task) if args.best is not None else str(args.checkpoint)
    try:
        with fetched(path) as local:  # a checkpoint in object storage is read from a temporary copy
            ckpt = load_checkpoint(local, pick_device(args.device))
    except (FileNotFoundError, ValueError) as exc:
        raise PredictError(f"cannot read the checkpoint {shown(path)}: {exc}") from None
    if args.task is not None and ckpt.task != args.task:
        raise PredictError(f"{ckpt.path} is a {ckpt.task} model, not {args.task}; pick a {args.task} checkpoint")
    if las is not None and las.folder:
        return predict_las.run_folder(ckpt, las, read_image, force=args.force)
    if args.image is None:
        image = _render(args.index, ckpt.task, ckpt, args.seed, args.scale)
        name = f"synthetic-{args.index}-{ckpt.task}"
    else:
        name = f"{args.image.name}-{ckpt.task}"  # scan.png and scan.tif, binary and multiclass: four folders
    out = args.out if args.out is not None else Path("predictions") / name
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise PredictError(f"{out} exists and holds an earlier prediction; choose another --out, or --force to replace")
    warnings = doubts(image, ckpt, colour=colour)
    for warning in warnings:
        print(f"predict: warning: {warning}", file=sys.stderr)
    h, w = image.shape
    source = str(args.image) if args.image is not None else f"synthetic {ckpt.task} raster {args.index}"
    if las is None:
        prediction = segment(ckpt, image)
    else:
        registration = predict_las.registration_for(las, image, ckpt, args, source)
        prediction, digitised = predict_las.segment(ckpt, image, registration, las)
    try:
        written = write_outputs(out, image, prediction)
        written.append(write_summary(out, source, ckpt.task, (w, h), prediction, warnings))
        if las is not None:
            written += predict_las.write_single(out, image, registration, las, digitised)
    except OSError as exc:
        raise PredictError(f"cannot write to {out}: {exc.strerror or exc}") from None
    columns = len({c for c, _, _ in prediction.curves})
    doubt = f"; {len(warnings)} warning{'s' if len(warnings) != 1 else ''}" if warnings else ""
    return (
        f"{ckpt.task} model {ckpt.path} on {ckpt.device}: {w} x {h} px (width x height), "
        f"{len(prediction.curves)} curve points in {columns} columns{doubt}; "
        f"wrote {', '.join(str(p) for p in written)}"
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
