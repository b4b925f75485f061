"""Write the synthetic set in the on-disk layout: ``python -m datamodules.export --task T --count N --out DIR``.

    python -m datamodules.export --task binary --count 2000 --out data/binary [--scale 1.0] [--workers 4]

Instances 0..N-1 of (seed, task) become ``images/NAME.png`` (``--format tif``: deflate-compressed TIFF),
``labels/NAME.png`` and ``curves/NAME.npz`` (the true curves, ``datamodules.truth``), NAME = ``<task>_<index>``
with six or more digits, so that names sort as indices do. ``split.csv`` holds the split a study rendering the same
N instances uses (the last fifth validates), so ``study.run --data DIR`` sees exactly the rasters, batches and
metrics of ``study.run --instances N`` with the same seed.

``--rescan`` restyles the images with scan effects the generator does not draw (grey and uneven paper, a blur,
grain, JPEG coding at quality 50; labels unchanged) and writes them as JPEG: a differently-styled set to validate
on (``study.run --val-data``).

Resumable: each file is written whole (a temporary file renamed into place) and an instance is done when its
three files are there; run the same command again and it writes only what is missing. ``export.json`` keeps the
flags, and an export goes on only with the same task, seed, scale, format and style (the count may grow).

Exit status 0, or 2 with one line for a mistake (an --out that holds something else, other flags than the export
there has).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from datamodules.cli import Exit, Parser, UsageError, number_in, whole_number
from datamodules.labels import TASKS, task_spec
from datamodules.layout import CURVES, CURVES_SUFFIX, IMAGES, LABEL_SUFFIX, LABELS, SPLIT_FILE, TRAIN, VAL, split_sizes
from datamodules.synth import GENERATOR_VERSION, render
from datamodules.truth import write_truth

MANIFEST = "export.json"
VAL_FRACTION = 0.2  # the synthetic data module's default
JPEG_QUALITY = 50  # of --rescan
ImageFormat = tuple[str, str, dict[str, int | str]]  # suffix, Pillow format, Pillow save options
FORMATS: dict[str, ImageFormat] = {
    "png": (".png", "PNG", {"compress_level": 1}),
    "tif": (".tif", "TIFF", {"compression": "tiff_deflate"}),
}
RESCAN: ImageFormat = (".jpg", "JPEG", {"quality": JPEG_QUALITY})
BAR = 30  # characters of the progress bar


@dataclass(frozen=True)
class Export:
    """What an export folder holds: the flags that fix its files (``export.json``)."""

    task: str
    seed: int
    scale: float
    format: str
    rescan: bool
    count: int
    generator_version: int = GENERATOR_VERSION

    def same_files(self, other: Export) -> bool:
        return {**asdict(self), "count": 0} == {**asdict(other), "count": 0}

    @property
    def digits(self) -> int:
        return max(6, len(str(self.count - 1)))

    def name(self, index: int) -> str:
        return f"{self.task}_{index:0{self.digits}d}"

    def files(self, out: Path, index: int) -> tuple[Path, Path, Path]:
        name = self.name(index)
        suffix = RESCAN[0] if self.rescan else FORMATS[self.format][0]
        return (
            out / IMAGES / f"{name}{suffix}",
            out / LABELS / f"{name}{LABEL_SUFFIX}",
            out / CURVES / f"{name}{CURVES_SUFFIX}",
        )


def rescanned(image: npt.NDArray[np.uint8], seed: int, task: str, index: int) -> npt.NDArray[np.uint8]:
    """The image as another scanner would have left it: deterministic per (seed, task, index)."""
    rng = np.random.default_rng([seed, task_spec(task).task_id, index, 0x5CA7])
    h, w = image.shape
    x = image.astype(np.float32) / 255.0
    paper = rng.uniform(0.72, 0.85) + 0.06 * np.sin(np.linspace(0, rng.uniform(2, 6), w, dtype=np.float32))  # (W,)
    x = 1.0 - (1.0 - x) ** rng.uniform(0.8, 1.25)  # a different tone curve
    x = x * paper[None, :]  # grey, uneven paper; ink stays dark
    blurred = Image.fromarray(np.clip(x * 255, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))
    x = np.asarray(blurred, np.float32) + rng.normal(0, 6, (h, w)).astype(np.float32)  # grain
    buf = io.BytesIO()
    Image.fromarray(np.clip(x, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return np.asarray(Image.open(buf).convert("L"), np.uint8)


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def export_one(job: tuple[Export, Path, int]) -> int:
    """Render instance ``index`` and write its three files; returns the index."""
    spec, out, index = job
    sample = render(index, seed=spec.seed, task=spec.task, scale=spec.scale)
    image_path, label_path, curves_path = spec.files(out, index)
    image = sample.image
    _, fmt, options = RESCAN if spec.rescan else FORMATS[spec.format]
    if spec.rescan:
        image = rescanned(image, spec.seed, spec.task, index)
    _atomic(image_path, lambda p: Image.fromarray(image).save(p, format=fmt, **options))
    _atomic(label_path, lambda p: Image.fromarray(sample.label).save(p, format="PNG", compress_level=1))
    _atomic(curves_path, lambda p: write_truth(p, sample))
    return index


def _prepare(out: Path, spec: Export) -> None:
    """Make the folders, or check that an existing export is this one; write the manifest and split.csv."""
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            saved = Export(**json.loads(manifest.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise UsageError(f"{manifest} is damaged ({exc}); export into a new --out") from None
        if not saved.same_files(spec):
            raise UsageError(
                f"{out} holds an export of {saved.task}, seed {saved.seed}, scale {saved.scale:g}, format "
                f"{saved.format}{', rescanned' if saved.rescan else ''}; give the same flags to go on, or another --out"
            )
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(
            f"--out {out} exists and is not an export folder (no {MANIFEST}); choose a new or empty folder"
        )
    try:
        for sub in (IMAGES, LABELS, CURVES):
            (out / sub).mkdir(parents=True, exist_ok=True)
        for sub in (IMAGES, LABELS, CURVES):  # what a killed export left half-written
            for leftover in (out / sub).glob(".*.tmp"):
                leftover.unlink()
        n_train, _ = split_sizes(spec.count, VAL_FRACTION)
        rows = "".join(f"{spec.name(i)},{TRAIN if i < n_train else VAL}\n" for i in range(spec.count))
        _atomic(out / SPLIT_FILE, lambda p: p.write_text("name,split\n" + rows))
        _atomic(manifest, lambda p: p.write_text(json.dumps(asdict(spec), indent=2, sort_keys=True) + "\n"))
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None


class Progress:
    """A progress bar on a terminal (one line, redrawn), or a line per tenth elsewhere (logs)."""

    def __init__(self, total: int, done: int, stream: TextIO | None = None) -> None:
        self.total, self.done = total, done
        self.stream = sys.stderr if stream is None else stream
        self.started, self.start_done = time.perf_counter(), done
        self.tty = self.stream.isatty()
        self.shown = -1.0

    def step(self) -> None:
        self.done += 1
        now = time.perf_counter()
        tenth = self.done * 10 // max(self.total, 1)
        if self.tty and now - self.shown < 0.25 and self.done < self.total:
            return
        if not self.tty and tenth == self.shown and self.done < self.total:
            return
        self.shown = now if self.tty else tenth
        rate = (self.done - self.start_done) / max(now - self.started, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        filled = BAR * self.done // max(self.total, 1)
        line = (
            f"[{'#' * filled}{'.' * (BAR - filled)}] {self.done:,}/{self.total:,} rasters, {rate:.1f}/s, "
            f"{eta / 60:.1f} min left"
        )
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def export(spec: Export, out: Path, workers: int = 1, progress: bool = True) -> tuple[int, int]:
    """Write what is missing of the export ``spec`` into ``out``; returns (written now, there before)."""
    _prepare(out, spec)
    todo = [i for i in range(spec.count) if not all(p.is_file() for p in spec.files(out, i))]
    before = spec.count - len(todo)
    bar = Progress(spec.count, before) if progress else None
    jobs = [(spec, out, i) for i in todo]
    if workers > 1 and len(todo) > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(export_one, jobs, chunksize=1):
                if bar is not None:
                    bar.step()
    else:
        for job in jobs:
            export_one(job)
            if bar is not None:
                bar.step()
    return len(todo), before


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m datamodules.export", description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, choices=TASKS, help="the task whose labels are written")
    p.add_argument("--count", type=whole_number(2), required=True, help="instances 0..COUNT-1 (at least 2)")
    p.add_argument("--out", type=Path, required=True, help="the dataset folder to write (new, empty, or this export)")
    p.add_argument("--scale", type=number_in(0.02, 4), default=1.0, help="raster scale, 1.0 = full size (default)")
    p.add_argument("--seed", type=whole_number(0), default=0, help="the generator's seed (default 0)")
    p.add_argument("--workers", type=whole_number(1), default=1, help="processes rendering (default 1)")
    p.add_argument("--format", choices=tuple(FORMATS), default="png", help="image files: png (default) or tif")
    p.add_argument("--rescan", action="store_true", help="restyle the images with other scan effects, as JPEG")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        spec = Export(args.task, args.seed, args.scale, args.format, args.rescan, args.count)
        started = time.perf_counter()
        written, before = export(spec, args.out.absolute(), args.workers)
    except UsageError as exc:
        print(f"export: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    seconds = time.perf_counter() - started
    print(
        f"wrote {written} rasters into {args.out} in {seconds:.1f} s ({before} were there already); "
        f"check it with: python -m datamodules.check {args.out} --task {args.task}"
    )
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
