"""A dataset on disk: a folder of scans and their labels that a study trains or validates on.

::

    DIR/images/NAME.png|.tif|.tiff|.jpg|.jpeg   8- or 16-bit grey, or RGB/RGBA, made grey by ``read_image``
    DIR/labels/NAME.png                         8-bit, one class per pixel: 0 background, 1 curve (binary) or
                                                curve A, 2 curve B (multiclass), 255 ignored; the image's size
    DIR/curves/NAME.npz                         optional: the raster's true curves (``datamodules.export``
                                                writes them); without it the truth is traced from the label
    DIR/split.csv                               optional: ``name,split`` rows, split train | val | test

Without ``split.csv`` every name is split by a hash of the name (``hash_split``), the fractions a flag: the same
name lands in the same split on every machine and whatever else the folder holds.

Sizes: depth runs along the width. A raster wider than the collate takes (``MAX_WIDTH``) is cut into windows along
depth (``windows``: each ``MAX_WIDTH`` wide, neighbours overlapping by at least ``WINDOW_OVERLAP``; every window
is a raster of its own in training and validation). A raster taller than ``MAX_HEIGHT``, or lower or shorter
than ``MIN_SIDE``, is refused with its name (``size_problem``); nothing is dropped silently.

Nothing here imports torch: the check (``datamodules.check``) and the plan (``results.plan``) read it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

# The rasters the collate's batches are sized for: at most the generator's full-scale maximum (the presets' memory
# budget, ``bench/memory.py``), at least a few pixels to hold a curve. Depth runs along the width.
MAX_HEIGHT = 640
MAX_WIDTH = 12_800
MIN_SIDE = 8
IMAGES, LABELS, CURVES = "images", "labels", "curves"
SPLIT_FILE = "split.csv"
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
LABEL_SUFFIX = ".png"
CURVES_SUFFIX = ".npz"
TRUTH_ARRAYS = ("curve_rows", "curve_classes", "curve_tracks", "curve_scored", "curve_laps")  # in curves/NAME.npz
SPLITS = ("train", "val", "test")
TRAIN, VAL, TEST = SPLITS
DEFAULT_SPLIT = (0.8, 0.2, 0.0)  # train, val, test shares of the hash split
WINDOW_OVERLAP = 256  # px of depth that neighbouring windows of a long raster share, at least
PAPER_RGB = (255, 255, 255)  # what a transparent pixel of an RGBA scan becomes
# Image modes as Pillow opens them: what read_image makes grey, and how.
GREY_MODES = frozenset({"1", "L", "P"})
COLOUR_MODES = frozenset({"RGB", "RGBX", "RGBA", "LA", "PA"})
DEEP_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})  # 16-bit grey (Pillow may open it as I)
LABEL_MODES = frozenset({"L", "P"})  # one 8-bit value per pixel: the class (P: the palette index)


class LayoutError(ValueError):
    """A file of a dataset folder that cannot be used; the message is one line naming the file and the fix."""


def split_sizes(n: int, val_fraction: float) -> tuple[int, int]:
    """(train, val) counts of ``n`` instances with ``val_fraction`` held out: at least one validation instance
    and at most all but one (the synthetic data module's split, and the one ``datamodules.export`` writes)."""
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    return n - n_val, n_val


def hash_split(name: str, fractions: Sequence[float] = DEFAULT_SPLIT) -> str:
    """The split of ``name`` without a split.csv: a uniform number from the name's SHA-256, cut at the fractions."""
    u = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2.0**64
    train, val = fractions[0], fractions[0] + fractions[1]
    return TRAIN if u < train else VAL if u < val else TEST


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.8,0.2,0"`` -> (0.8, 0.2, 0.0): train, val and test shares, each in [0, 1], summing to 1.

    Raises:
        ValueError: not three numbers, a share outside [0, 1], no training or validation share, or a sum
            other than 1.
    """
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected TRAIN,VAL,TEST shares such as 0.8,0.2,0, got {text!r}") from None
    if len(values) != 3 or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"expected three shares in [0, 1] (TRAIN,VAL,TEST), got {text!r}")
    if abs(sum(values) - 1.0) > 1e-6 or values[0] == 0 or values[1] == 0:
        raise ValueError(f"the shares must sum to 1 with some training and some validation, got {text!r}")
    return values[0], values[1], values[2]


def split_flag(text: str) -> tuple[float, float, float]:
    """A flag type (``--split``): ``parse_fractions`` with argparse's error, so the mistake is one line."""
    try:
        return parse_fractions(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def describe_split(fractions: Sequence[float]) -> str:
    return "/".join(f"{f:g}" for f in fractions)


def size_problem(height: int, width: int) -> str | None:
    """Why a raster of this size cannot be used (with the fix), or None; wide rasters are windowed, not refused."""
    if height > MAX_HEIGHT:
        if height > width:
            return (
                f"{width} x {height} px is taller than {MAX_HEIGHT} px and portrait: depth must run along the "
                "width; fix: rotate it by 90 degrees (image and label alike)"
            )
        return (
            f"{width} x {height} px is taller than {MAX_HEIGHT} px; fix: scale image and label down to at most "
            f"{MAX_HEIGHT} rows (labels with nearest-neighbour resampling)"
        )
    if height < MIN_SIDE or width < MIN_SIDE:
        return f"{width} x {height} px is smaller than {MIN_SIDE} px on a side; fix: remove it or use a larger scan"
    return None


def windows(width: int) -> list[tuple[int, int]]:
    """Column ranges [x0, x1) a raster of ``width`` columns is used as: itself, or evenly spaced windows of
    ``MAX_WIDTH`` columns that cover it with at least ``WINDOW_OVERLAP`` columns shared by neighbours."""
    if width <= MAX_WIDTH:
        return [(0, width)]
    n = math.ceil((width - WINDOW_OVERLAP) / (MAX_WIDTH - WINDOW_OVERLAP))
    starts = np.round(np.linspace(0, width - MAX_WIDTH, n)).astype(int)
    return [(int(x0), int(x0) + MAX_WIDTH) for x0 in starts]


@dataclass(frozen=True)
class Raster:
    """One scan of a dataset folder: its files and its split."""

    name: str
    image: Path
    label: Path
    curves: Path | None  # the true curves, when the folder has them
    split: str


@dataclass
class Listing:
    """What a dataset folder holds, from its file names alone (no image opened), and what is wrong with it.

    Attributes:
        root: the folder.
        rasters: every scan with an image and a label, sorted by name.
        problems: one line per problem, each naming the file and the fix.
        split_source: ``split.csv`` or the hash split's fractions, for the summary.
    """

    root: Path
    rasters: list[Raster] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    split_source: str = ""

    def of_split(self, *splits: str) -> list[Raster]:
        return [r for r in self.rasters if r.split in splits]


def _names(folder: Path, problems: list[str], required: bool) -> dict[str, list[Path]] | None:
    """Stem -> files of ``folder`` (hidden files skipped); None, with a problem line, where it cannot be listed."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        if required:
            problems.append(f"{folder}: no such folder; fix: put the scans in {folder}")
        return None
    except NotADirectoryError:
        problems.append(f"{folder}: not a folder; fix: make it a folder of files")
        return None
    except PermissionError as exc:
        problems.append(f"{folder}: cannot be read ({exc.strerror}); fix: chmod u+rx it, or run as its owner")
        return None
    out: dict[str, list[Path]] = {}
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        out.setdefault(path.stem, []).append(path)
    return out


def _read_split_csv(path: Path, names: set[str], problems: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"{path}: cannot be read ({exc}); fix: write it as UTF-8 'name,split' rows")
        return out
    for line, row in enumerate(rows, 1):
        if not row or (line == 1 and [c.strip() for c in row] == ["name", "split"]):
            continue
        if len(row) != 2 or row[1].strip() not in SPLITS:
            problems.append(
                f"{path}:{line}: {','.join(row)!r} is not 'name,split' with split one of {', '.join(SPLITS)}; "
                "fix: correct the line"
            )
            continue
        name, split = row[0].strip(), row[1].strip()
        if name in out:
            problems.append(f"{path}:{line}: {name!r} is listed twice; fix: keep one line per name")
        elif name not in names:
            problems.append(f"{path}:{line}: {name!r} has no image in images/; fix: remove the line or add the image")
        out[name] = split
    for name in sorted(names - set(out)):
        problems.append(f"{path}: {name!r} of images/ has no line; fix: add '{name},train' (or val, test)")
    return out


def list_folder(root: Path | str, split: Sequence[float] = DEFAULT_SPLIT) -> Listing:
    """The scans of a dataset folder and the problems its file names show.

    Args:
        root: the dataset folder (``images/``, ``labels/``, optional ``curves/`` and ``split.csv``).
        split: train, val and test shares of the hash split, used where there is no ``split.csv``.

    Returns:
        The listing; its ``problems`` name every unreadable folder, image without a label, label without an
        image, duplicate name, file of another kind and bad ``split.csv`` line. Nothing is opened but folders.
    """
    root = Path(root)
    listing = Listing(root)
    problems = listing.problems
    top = _names(root, problems, required=True)
    if top is None:
        return listing
    images = _names(root / IMAGES, problems, required=True)
    if images is None:
        return listing
    listed = _names(root / LABELS, problems, required=False)
    labels_unreadable = listed is None and (root / LABELS).exists()  # said once above, not once per image
    labels = listed or {}
    curves = _names(root / CURVES, problems, required=False) or {}
    chosen: dict[str, Path] = {}
    for stem, paths in images.items():
        ok = [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES]
        for p in paths:
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                problems.append(
                    f"{p}: not an image of the layout ({', '.join(IMAGE_SUFFIXES)}); fix: convert it or move it out"
                )
        if len(ok) > 1:
            problems.append(f"{ok[1]}: duplicate name {stem!r} (also {ok[0].name}); fix: rename or remove one of them")
        if ok:
            chosen[stem] = ok[0]
    if not chosen:
        problems.append(
            f"{root / IMAGES}: holds no image ({', '.join(IMAGE_SUFFIXES)}); fix: put the scans there, their labels "
            f"in {root / LABELS}"
        )
    label_of: dict[str, Path] = {}
    for stem, paths in labels.items():
        for p in paths:
            if p.suffix.lower() == LABEL_SUFFIX:
                label_of[stem] = p
            else:
                problems.append(
                    f"{p}: a label must be an 8-bit PNG named NAME{LABEL_SUFFIX}; fix: save it as "
                    f"{p.with_suffix(LABEL_SUFFIX).name}, 8-bit grey whose values are the classes"
                )
        if stem not in chosen:
            problems.append(f"{paths[0]}: label without an image; fix: add images/{stem}.png or remove the label")
    split_path = root / SPLIT_FILE
    if split_path.is_file():
        splits = _read_split_csv(split_path, set(chosen), problems)
        listing.split_source = SPLIT_FILE
    else:
        splits = {name: hash_split(name, split) for name in chosen}
        listing.split_source = f"hash split {describe_split(split)}"
    for stem, image in chosen.items():
        label = label_of.get(stem)
        if label is None:
            if stem not in labels and not labels_unreadable:  # a label of another kind was named above
                problems.append(
                    f"{image}: no label {root / LABELS / (stem + LABEL_SUFFIX)}; fix: add the label or move the "
                    "image out of images/"
                )
            continue
        truth = next((p for p in curves.get(stem, []) if p.suffix == CURVES_SUFFIX), None)
        listing.rasters.append(Raster(stem, image, label, truth, splits.get(stem, TRAIN)))
    return listing


def study_rasters(listing: Listing, cap: int | None = None) -> tuple[list[Raster], list[Raster]]:
    """(train, val) of a ``--data`` folder: its train and val rasters by name; with ``cap``, ``cap`` of them in
    the folder's proportion of the two (at least one validation raster where it has one), the first by name of
    each split."""
    train, val = listing.of_split(TRAIN), listing.of_split(VAL)
    if cap is None or cap >= len(train) + len(val):
        return train, val
    n_val = min(len(val), max(1, round(cap * len(val) / (len(train) + len(val)))))
    return train[: cap - n_val], val[:n_val]


def validation_rasters(listing: Listing) -> list[Raster]:
    """The rasters of a ``--val-data`` folder: every one but those its split.csv holds out for testing."""
    return listing.of_split(TRAIN, VAL)


# -- reading --


def truth_width(path: Path) -> int:
    """The columns of a true-curves file, from its headers alone (no array decoded); ValueError for a file that
    is not one."""
    try:
        with zipfile.ZipFile(path) as z:
            missing = {f"{name}.npy" for name in (*TRUTH_ARRAYS, "curves")} - set(z.namelist())
            if missing:
                raise ValueError(f"no {sorted(missing)[0]}")
            with z.open("curve_rows.npy") as f:
                version = np.lib.format.read_magic(f)
                header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, _, _ = header(f)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise ValueError(f"{path}: not a true-curves file of datamodules.export ({exc})") from None
    if len(shape) != 2:
        raise ValueError(f"{path}: curve_rows has shape {shape}, expected (curves, columns)")
    return int(shape[1])


def _truncated(path: Path, im: Image.Image) -> bool:
    """Whether the file ends before its image data does, from its header and its tail alone (no decoding)."""
    size = path.stat().st_size
    if im.format == "PNG":
        with open(path, "rb") as f:
            f.seek(max(0, size - 12))
            return not f.read().endswith(b"IEND\xaeB`\x82")
    if im.format == "JPEG":
        with open(path, "rb") as f:
            f.seek(max(0, size - 64))
            return not f.read().rstrip(b"\0\r\n ").endswith(b"\xff\xd9")
    if im.format == "TIFF":
        tags = getattr(im, "tag_v2", {})
        offsets, counts = tags.get(273) or tags.get(324), tags.get(279) or tags.get(325)
        if offsets is None or counts is None:
            return False
        offsets = offsets if isinstance(offsets, tuple) else (offsets,)
        counts = counts if isinstance(counts, tuple) else (counts,)
        return max((o + c for o, c in zip(offsets, counts, strict=False)), default=0) > size
    return False


def image_header(path: Path) -> tuple[int, int, str]:
    """(height, width, mode) of a scan from its header, with its tail checked for truncation.

    Raises:
        LayoutError: unreadable, not an image, truncated, or of a mode ``read_image`` does not take.
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
            mode = im.mode
            truncated = _truncated(path, im)
    except (Image.UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise LayoutError(
            f"{path}: not an image Pillow can read ({reason}); fix: save it again as PNG or TIFF"
        ) from None
    except OSError as exc:
        raise LayoutError(
            f"{path}: cannot be read ({exc.strerror or exc}); fix: check the file and its permissions"
        ) from None
    if truncated:
        raise LayoutError(f"{path}: truncated (the file ends before its image data); fix: copy or export it again")
    if mode not in GREY_MODES | COLOUR_MODES | DEEP_MODES:
        raise LayoutError(f"{path}: image mode {mode} is not supported; fix: save it as 8- or 16-bit grey, RGB or RGBA")
    return h, w, mode


def read_image(path: Path) -> npt.NDArray[np.uint8]:
    """A scan as (H, W) uint8 grey, 255 = paper, 0 = ink.

    8-bit grey as it is; a palette or bilevel image through its grey values; RGB by Pillow's luma
    (L = 0.299 R + 0.587 G + 0.114 B); RGBA and grey + alpha composited over white paper first (transparent is
    paper); 16-bit grey stretched linearly from its darkest to its lightest pixel onto 0-255 (what
    ``study.predict`` does with a 16-bit scan).

    Raises:
        LayoutError: unreadable, truncated or not an image.
    """
    im: Image.Image
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in DEEP_MODES:
                arr = np.asarray(im, dtype=np.float64)
                lo, hi = float(arr.min()), float(arr.max())
                return np.round(255 * (arr - lo) / max(hi - lo, 1e-12)).astype(np.uint8)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                back = Image.new("RGBA", im.size, (*PAPER_RGB, 255))
                im = Image.alpha_composite(back, im.convert("RGBA"))
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except (Image.UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError, OSError) as exc:
        raise LayoutError(f"{path}: cannot be read as an image ({exc}); fix: save it again") from None


def read_label(path: Path) -> npt.NDArray[np.uint8]:
    """A label as (H, W) uint8 class values (a palette PNG's indices); LayoutError for another mode."""
    try:
        with Image.open(path) as im:
            if im.mode not in LABEL_MODES or im.format != "PNG":
                raise LayoutError(label_mode_problem(path, im.mode, im.format))
            im.load()
            return np.asarray(im, dtype=np.uint8)
    except (Image.UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError, OSError) as exc:
        if isinstance(exc, LayoutError):
            raise
        raise LayoutError(f"{path}: cannot be read as a label ({exc}); fix: save it again as an 8-bit PNG") from None


def label_mode_problem(path: Path, mode: str, fmt: str | None) -> str:
    what = f"{fmt or 'an unknown format'} of mode {mode}"
    if mode in ("RGBA", "LA", "PA"):
        what += " (with alpha)"
    elif mode in DEEP_MODES:
        what += " (16-bit)"
    return (
        f"{path}: a label must be an 8-bit single-channel PNG (mode L or P) whose values are the classes, not "
        f"{what}; fix: save it as 8-bit grey"
    )


@dataclass(frozen=True)
class Window:
    """One item of a dataset on disk: columns [x0, x1) of a raster (all of them unless it is longer than
    ``MAX_WIDTH``)."""

    raster: Raster
    x0: int
    x1: int
    height: int
    width: int  # the whole raster's

    @property
    def name(self) -> str:
        if self.x1 - self.x0 == self.width:
            return self.raster.name
        return f"{self.raster.name} (columns {self.x0}-{self.x1 - 1} of {self.width})"


def cut(rasters: Sequence[Raster]) -> list[Window]:
    """The items of ``rasters``, each whole or in ``windows``, from the images' headers (LayoutError as
    ``image_header``)."""
    out = []
    for r in rasters:
        h, w, _ = image_header(r.image)
        out += [Window(r, x0, x1, h, w) for x0, x1 in windows(w)]
    return out
