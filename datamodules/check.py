"""Check a dataset folder before a study uses it: ``python -m datamodules.check DIR --task T``.

Every problem is one line naming the file and the fix: an unreadable or truncated image, an image without a
label (or a label without an image), a label of another size, label values outside the task's classes, a label
with no curve pixel, a duplicate name, an unsupported image or label mode, a raster the collate cannot take, a bad
split.csv line, an unreadable folder. Then a summary: rasters per split, widths and heights against the collate's
limits (long rasters and their windows), class frequencies, the ignored share, where the curves' truth comes from.

It reads each image's header and tail (not its pixels: a truncated PNG, JPEG or TIFF shows at its end) and
decodes every label (Pillow's histogram: its values and their counts). ``study.run --data`` and ``--val-data`` run
the same check before Ray starts.

Exit status 0, or 2 when there is any problem (nothing else is written or run).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from datamodules.cli import Exit, Parser, UsageError, whole_number
from datamodules.labels import IGNORE_INDEX, TASKS, task_spec
from datamodules.layout import (
    DEFAULT_SPLIT,
    LABEL_MODES,
    MAX_HEIGHT,
    MAX_WIDTH,
    MIN_SIDE,
    SPLITS,
    TEST,
    TRAIN,
    VAL,
    LayoutError,
    Listing,
    Raster,
    image_header,
    label_mode_problem,
    list_folder,
    size_problem,
    split_flag,
    study_rasters,
    truth_width,
    validation_rasters,
    windows,
)

# A pool's start (a second or two) pays only on many large rasters, whose labels take milliseconds to decode:
PARALLEL_FROM = 200  # rasters, at least
PARALLEL_PIXELS = 1_000_000  # in the first raster, at least
MAX_WORKERS = 8
ROLES = ("data", "val-data")  # what a study uses the folder for: train + validate, or a second validation set


@dataclass(frozen=True)
class RasterCheck:
    """What one raster's files show: its size, its label's value counts, its problems."""

    name: str
    split: str
    height: int = 0
    width: int = 0
    counts: tuple[tuple[int, int], ...] = ()  # (label value, pixels), values present only
    truth: str = "label"  # where its curves' truth comes from: "curves" (the file beside it) or "label"
    problems: tuple[str, ...] = ()


def _label_problems(raster: Raster, h: int, w: int, task: str) -> tuple[tuple[tuple[int, int], ...], list[str]]:
    spec = task_spec(task)
    allowed = {*range(spec.num_classes), IGNORE_INDEX}
    try:
        with Image.open(raster.label) as im:
            if im.mode not in LABEL_MODES or im.format != "PNG":
                return (), [label_mode_problem(raster.label, im.mode, im.format)]
            lw, lh = im.size
            if (lh, lw) != (h, w):
                return (), [
                    f"{raster.label}: label is {lw} x {lh} px but its image {raster.image.name} is {w} x {h}; "
                    "fix: make the label the image's size (nearest-neighbour resampling if it was scaled)"
                ]
            histogram = im.histogram()  # decodes the label: a truncated one raises here
    except (Image.UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return (), [f"{raster.label}: cannot be read as a label ({reason}); fix: save it again as an 8-bit PNG"]
    counts = tuple((v, n) for v, n in enumerate(histogram[:256]) if n)
    problems = []
    bad = [(v, n) for v, n in counts if v not in allowed]
    if bad:
        values = ", ".join(f"{v} ({n:,} px)" for v, n in bad[:5])
        classes = ", ".join(f"{i} {name}" for i, name in enumerate(spec.classes))
        hint = ""
        others = [t for t in TASKS if t != task and {v for v, _ in bad} < {*range(task_spec(t).num_classes)}]
        if others:
            hint = f", or use --task {others[0]}"
        problems.append(
            f"{raster.label}: label values {values} are not classes of the {task} task ({classes}, "
            f"{IGNORE_INDEX} ignored); fix: relabel those pixels{hint}"
        )
    elif not any(v in spec.curve_classes for v, _ in counts):
        problems.append(
            f"{raster.label}: no curve pixel (every value is 0 or {IGNORE_INDEX}); fix: label its curves, or remove "
            "the raster"
        )
    return counts, problems


def check_raster(raster: Raster, task: str) -> RasterCheck:
    """Header and tail of the image, the whole label, the size of the true curves: every problem, one line each."""
    try:
        h, w, _ = image_header(raster.image)
    except LayoutError as exc:
        return RasterCheck(raster.name, raster.split, problems=(str(exc),))
    problems = []
    size = size_problem(h, w)
    if size is not None:
        problems.append(f"{raster.image}: {size}")
    counts, label_problems = _label_problems(raster, h, w, task)
    problems += label_problems
    truth = "label"
    if raster.curves is not None:
        truth = "curves"
        try:
            if truth_width(raster.curves) != w:
                problems.append(
                    f"{raster.curves}: true curves of another width than the image's {w} px; fix: remove it"
                )
        except ValueError as exc:
            problems.append(f"{exc}; fix: remove it (the truth is then traced from the label)")
    return RasterCheck(raster.name, raster.split, h, w, counts, truth, tuple(problems))


def _pixels(raster: Raster) -> int:
    try:
        h, w, _ = image_header(raster.image)
    except LayoutError:
        return 0
    return h * w


def _check_one(args: tuple[Raster, str]) -> RasterCheck:
    return check_raster(*args)


@dataclass
class CheckResult:
    """A dataset folder, checked."""

    root: Path
    task: str
    role: str
    listing: Listing
    rasters: list[RasterCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # not problems: said in the summary
    used: int = 0  # rasters a study uses (train + val under the cap, or the second validation set)
    seconds: float = 0.0

    def summary(self) -> list[str]:
        """The summary lines."""
        ok = [r for r in self.rasters if r.height]
        per_split = {s: sum(1 for r in self.listing.rasters if r.split == s) for s in SPLITS}
        lines = [
            f"{self.root}: {len(self.listing.rasters)} rasters checked in {self.seconds:.1f} s for the {self.task} "
            f"task: " + ", ".join(f"{s} {n}" for s, n in per_split.items()) + f" ({self.listing.split_source})"
        ]
        use = "trains and validates on" if self.role == ROLES[0] else "validates a second time on"
        lines.append(f"  a study {use} {self.used} of them")
        if ok:
            hs, ws = [r.height for r in ok], [r.width for r in ok]
            long = [r for r in ok if r.width > MAX_WIDTH]
            n_windows = sum(len(windows(r.width)) for r in long)
            lines.append(
                f"  widths {min(ws):,}-{max(ws):,} px, heights {min(hs):,}-{max(hs):,} px; the collate takes "
                f"{MIN_SIDE}-{MAX_WIDTH:,} x {MIN_SIDE}-{MAX_HEIGHT} px: "
                + (f"{len(long)} longer ones are used as {n_windows} windows" if long else "all fit as they are")
            )
            totals: dict[int, int] = {}
            for r in ok:
                for v, n in r.counts:
                    totals[v] = totals.get(v, 0) + n
            pixels = sum(totals.values())
            labelled = pixels - totals.get(IGNORE_INDEX, 0)
            spec = task_spec(self.task)
            shares = ", ".join(
                f"{name} {totals.get(c, 0) / max(labelled, 1):.2%}" for c, name in enumerate(spec.classes)
            )
            lines.append(
                f"  classes (of labelled pixels): {shares}; ignored {totals.get(IGNORE_INDEX, 0) / max(pixels, 1):.2%}"
                " of all pixels"
            )
            from_file = sum(1 for r in ok if r.truth == "curves")
            lines.append(
                f"  curve truth: {from_file} from curves/NAME.npz, {len(ok) - from_file} traced from the label"
            )
        lines += [f"  note: {n}" for n in self.notes]
        verdict = f"{len(self.problems)} problems: fix them, then check again" if self.problems else "no problem"
        lines.append(f"  {verdict}")
        return lines


def check_folder(
    root: Path | str,
    task: str,
    *,
    split: Sequence[float] = DEFAULT_SPLIT,
    role: str = ROLES[0],
    instances: int | None = None,
    workers: int | None = None,
) -> CheckResult:
    """Check a dataset folder for the ``task``.

    Args:
        root: the folder (``datamodules.layout``).
        task: the task the labels must be of.
        split: shares of the hash split, where the folder has no split.csv.
        role: ``data`` (a study trains and validates on it: both splits must be non-empty under the cap) or
            ``val-data`` (a second validation set).
        instances: the study's cap on the rasters of a ``data`` folder.
        workers: processes reading the files; None: one per CPU (at most 8) for a large folder.

    Returns:
        The result; its ``problems`` are one line each, naming the file and the fix.
    """
    started = time.perf_counter()
    root = Path(root)
    listing = list_folder(root, split)
    result = CheckResult(root, task, role, listing, problems=list(listing.problems))
    jobs = [(r, task) for r in listing.rasters]
    n_proc = min(MAX_WORKERS, os.cpu_count() or 1) if workers is None else workers
    if n_proc > 1 and len(jobs) >= PARALLEL_FROM and _pixels(listing.rasters[0]) >= PARALLEL_PIXELS:
        with multiprocessing.get_context("spawn").Pool(n_proc) as pool:
            result.rasters = pool.map(_check_one, jobs, chunksize=max(1, len(jobs) // (8 * n_proc)))
    else:
        result.rasters = [_check_one(job) for job in jobs]
    for r in result.rasters:
        result.problems += r.problems
    if role == ROLES[0]:
        train, val = study_rasters(listing, instances)
        result.used = len(train) + len(val)
        if listing.rasters and not (train and val) and not result.problems:  # else it may follow from those
            missing = TRAIN if not train else VAL
            result.problems.append(
                f"{root}: no {missing} raster among the ones a study would use ({listing.split_source}); fix: give "
                f"some rasters the split {missing} in split.csv, or change the shares (--split)"
                + (" or raise --instances" if instances is not None else "")
            )
    else:
        result.used = len(validation_rasters(listing))
        if listing.rasters and not result.used and not result.problems:
            result.problems.append(f"{root}: every raster is in the {TEST} split; fix: mark some {VAL} in split.csv")
    spec = task_spec(task)
    seen = {v for r in result.rasters for v, _ in r.counts}
    absent = [c for c in spec.curve_classes if c not in seen]
    if result.rasters and absent and not result.problems:
        result.notes.append(
            f"no label holds class {', '.join(map(str, absent))} ({', '.join(spec.classes[c] for c in absent)}) of "
            f"the {task} task: its scores for that class will be 0; is --task right?"
        )
    result.seconds = time.perf_counter() - started
    return result


def one_line(result: CheckResult, flag: str) -> str:
    """A failed check as one line for ``study.run``: the first problem, and how to see the others."""
    first = result.problems[0]
    more = len(result.problems) - 1
    if more:
        first += (
            f" (and {more} more problems: python -m datamodules.check {result.root} --task {result.task} lists them)"
        )
    return f"{flag}: {first}"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m datamodules.check", description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="the dataset folder: images/, labels/, optional curves/ and split.csv")
    p.add_argument("--task", required=True, choices=TASKS, help="the task the labels must be of")
    p.add_argument(
        "--split",
        type=split_flag,
        default=DEFAULT_SPLIT,
        help=f"TRAIN,VAL,TEST shares of the hash split where there is no split.csv "
        f"(default {','.join(f'{f:g}' for f in DEFAULT_SPLIT)})",
    )
    p.add_argument("--role", choices=ROLES, default=ROLES[0], help="data (train + validate, default) or val-data")
    p.add_argument("--instances", type=whole_number(2), help="the study's cap on the rasters it uses (--data)")
    p.add_argument("--workers", type=whole_number(1), help="processes reading the files (default: one per CPU, <= 8)")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"check: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    result = check_folder(
        args.folder, args.task, split=args.split, role=args.role, instances=args.instances, workers=args.workers
    )
    for line in result.problems:
        print(line)
    print("\n".join(result.summary()))
    return Exit.USAGE if result.problems else Exit.OK


if __name__ == "__main__":
    sys.exit(main())
