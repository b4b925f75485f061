"""``python -m study.predict``'s LAS output: a registered scan to a LAS 2.0 file, one scan or a folder of them.

    python -m study.predict --best STUDY --task T --image scan.png --registration scan.json --las scan.las [--step 0.5]
    python -m study.predict --best STUDY --task T --images scans/ --registrations regs/ --out las/

One scan: ``--las`` is written (``models.las``: the registered curves traced, resampled to ``--step`` in the
registration's depth unit, NULL where a curve has no value) and ``overlay.png`` in ``--out`` shows the LAS
curves drawn back on the scan. With ``--index`` the generator's own registration is used unless one is given.
A folder: every image in ``--images`` with a registration ``<stem>.json`` in ``--registrations``; ``--out`` gets
``<stem>.las``, ``<stem>.png`` (the LAS curves on the scan) and ``summary.csv`` (curves registered and found,
samples, null samples, mean confidence per scan), with a progress bar on stderr. Every registration and every
image's size are checked before the model runs: a mistake is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lasio
import numpy as np
import numpy.typing as npt
from PIL import Image

from datamodules.preview import write_png
from datamodules.registration import Registration, RegistrationError, load
from datamodules.synth import render_registered
from models.extraction import candidates_table, class_candidates
from models.inference import LoadedCheckpoint, PredictError, Prediction, logits_of
from models.las import DEFAULT_STEP, MIN_CONFIDENCE, Digitised, digitise, las_overlay, write_las

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif")
SUMMARY_FIELDS = ("image", "las", "curves_registered", "curves_found", "samples", "samples_null", "mean_confidence")


def _step(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_flags(p: argparse.ArgumentParser, source: argparse._MutuallyExclusiveGroup) -> None:
    """The LAS flags of ``study.predict`` (``--images`` joins the image source group)."""
    source.add_argument("--images", type=Path, metavar="DIR", help="a folder of scans: one LAS file per scan (LAS)")
    las = p.add_argument_group("LAS output")
    las.add_argument("--registration", type=Path, metavar="REG.json", help="the scan's registration (JSON)")
    las.add_argument("--las", type=Path, metavar="OUT.las", help="write the registered curves as LAS 2.0 here")
    las.add_argument("--registrations", type=Path, metavar="DIR", help="with --images: <stem>.json per scan")
    las.add_argument("--step", type=_step, help=f"LAS depth step in the registration's unit (default {DEFAULT_STEP})")
    las.add_argument(
        "--min-confidence",
        type=float,
        default=MIN_CONFIDENCE,
        help=f"NULL below this interpolated confidence (default {MIN_CONFIDENCE})",
    )


@dataclass(frozen=True)
class LasRequest:
    """What the LAS flags asked for, checked: one scan (``las`` and maybe its ``registration``) or a folder
    (``scans``: image, registration file, registration)."""

    step: float
    min_confidence: float
    las: Path | None = None
    registration: Registration | None = None
    scans: tuple[tuple[Path, Path, Registration], ...] = ()
    out: Path | None = None

    @property
    def folder(self) -> bool:
        return bool(self.scans)


def request(args: argparse.Namespace) -> LasRequest | None:
    """The checked LAS request of parsed flags, or None without LAS flags; UsageError for a wrong combination,
    an unusable registration or a scan that does not match its registration."""
    folder = args.images is not None
    if args.registrations is not None and not folder:
        raise PredictError("--registrations goes with --images")
    if folder and (args.registrations is None or args.out is None):
        raise PredictError("--images needs --registrations DIR and --out DIR")
    if folder and (args.las is not None or args.registration is not None):
        raise PredictError("--images writes <stem>.las into --out: drop --las and --registration")
    if not folder and args.las is None:
        if args.registration is not None or args.step is not None:
            raise PredictError("--registration and --step go with --las (or --images)")
        return None
    if not folder and args.registration is None and args.index is None:
        raise PredictError("--las needs --registration REG.json (only a synthetic --index has its own)")
    if not 0.0 <= args.min_confidence <= 1.0:
        raise PredictError(f"--min-confidence must be in [0, 1], got {args.min_confidence:g}")
    step = args.step if args.step is not None else DEFAULT_STEP
    if not folder:
        registration = load(args.registration) if args.registration is not None else None
        return LasRequest(step, args.min_confidence, las=args.las, registration=registration)
    return LasRequest(step, args.min_confidence, scans=_scans(args.images, args.registrations), out=args.out)


def _scans(images: Path, registrations: Path) -> tuple[tuple[Path, Path, Registration], ...]:
    for folder, flag in ((images, "--images"), (registrations, "--registrations")):
        if not folder.is_dir():
            raise PredictError(f"{flag}: no such folder: {folder}")
    files = sorted(p for p in images.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PredictError(f"{images} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    out = []
    for image in files:
        reg_path = registrations / f"{image.stem}.json"
        if not reg_path.is_file():
            raise RegistrationError(f"no registration for {image.name}: expected {reg_path}")
        reg = load(reg_path)
        try:
            with Image.open(image) as im:
                size = im.size  # (W, H), from the header only
        except (OSError, Image.UnidentifiedImageError) as exc:
            raise PredictError(f"{image} is not an image Pillow can read ({str(exc).splitlines()[0][:200]})") from None
        reg.check_image((size[1], size[0]), str(image))
        out.append((image, reg_path, reg))
    return tuple(out)


def registration_for(
    las: LasRequest, image: npt.NDArray[np.uint8], ckpt: LoadedCheckpoint, args: argparse.Namespace, source: str
) -> Registration:
    """The registration of one scan, checked against its size: the file given, or a synthetic raster's own."""
    if las.registration is not None:
        las.registration.check_image(image.shape, source)
        return las.registration
    seed = int(ckpt.data.get("seed", 0)) if args.seed is None else args.seed
    scale = float(ckpt.data.get("scale", 1.0)) if args.scale is None else args.scale
    return render_registered(args.index, seed=seed, task=ckpt.task, scale=scale)[1]


def segment(
    ckpt: LoadedCheckpoint, image: npt.NDArray[np.uint8], registration: Registration, las: LasRequest
) -> tuple[Prediction, Digitised]:
    """``models.inference.segment`` and the LAS of the same logits (one forward pass)."""
    mode = ckpt.model.mode
    logits = logits_of(ckpt, image)  # (1, C, H, W)
    classes = mode.predict(logits)[0].numpy().astype(np.uint8)  # (H, W)
    prediction = Prediction(classes, candidates_table(class_candidates(mode, logits)[0], mode.curve_classes))
    return prediction, digitise(mode, logits, registration, las.step, las.min_confidence)


def write_single(
    out: Path, image: npt.NDArray[np.uint8], registration: Registration, las: LasRequest, digitised: Digitised
) -> list[Path]:
    """Write ``--las`` and redraw ``overlay.png`` in ``out`` with the LAS curves read back from it; returns the
    LAS file's path."""
    assert las.las is not None  # request() gives a single-scan request its path
    write_las(digitised.las, las.step, las.las)
    write_png(out / "overlay.png", las_overlay(image, registration, lasio.read(str(las.las))))
    return [las.las]


def run_folder(
    ckpt: LoadedCheckpoint,
    las: LasRequest,
    read: Callable[[Path], npt.NDArray[np.uint8]],
    force: bool = False,
) -> str:
    """Every scan of a folder request to LAS; returns the line to print."""
    assert las.out is not None
    out = las.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise PredictError(f"{out} exists and is not empty; choose another --out, or --force to replace")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PredictError(f"cannot write to {out}: {exc.strerror or exc}") from None
    rows = []
    found = registered = 0
    for n, (image_path, _, registration) in enumerate(las.scans):
        _progress(n, len(las.scans), image_path.name)
        image = read(image_path)
        registration.check_image(image.shape, str(image_path))
        _, digitised = segment(ckpt, image, registration, las)
        las_path = out / f"{image_path.stem}.las"
        try:
            write_las(digitised.las, las.step, las_path)
            write_png(out / f"{image_path.stem}.png", las_overlay(image, registration, lasio.read(str(las_path))))
        except OSError as exc:
            raise PredictError(f"cannot write to {out}: {exc.strerror or exc}") from None
        rows.append({"image": str(image_path), "las": str(las_path), **digitised.summary()})
        found += digitised.found
        registered += digitised.registered
    _progress(len(las.scans), len(las.scans), "done")
    summary = out / "summary.csv"
    with open(summary, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return (
        f"{ckpt.task} model {ckpt.path} on {ckpt.device}: {len(rows)} scans, {found} of {registered} registered "
        f"curves found; wrote {len(rows)} LAS files and {summary}"
    )


def _progress(done: int, total: int, name: str) -> None:
    """A one-line progress bar on stderr (redrawn in place on a terminal, a line per scan elsewhere)."""
    width = 30
    filled = width * done // max(total, 1)
    line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name}"
    if sys.stderr.isatty():
        print(f"\r{line:<80}", end="\n" if done == total else "", file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)
