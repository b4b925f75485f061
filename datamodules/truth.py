"""The curve truth of a raster on disk: its true curves where the folder has them, else traced from its label.

The curve metrics (docs/metrics.md) score a prediction against curves: per curve, a row per column, a class, a
track band and the columns where it is scored. A synthetic raster carries them from the generator, and
``datamodules.export`` writes them beside the raster (``curves/NAME.npz``, ``write_truth``), so a study on an
exported folder scores exactly what a study that renders the same rasters scores.

A scan labelled by hand has only its label. ``trace_label`` then takes the truth from the label itself, with the
extraction the predictions get (``models.extraction.run_centres`` with equal weights): per column, every vertical
run of a curve class's label pixels is a truth point at the run's centre. Runs are chained into curves across
columns where exactly one run of the class touches one run of the next column (8-connected) and that one touches
only it; where runs meet or split (curves of one class crossing, a fork), the chains end. Each chain is a curve:

- scored in its columns at least ``EVENT_MARGIN`` columns from either end of the chain, where its run touches
  neither an ignored pixel nor the image's top or bottom edge (the run's centre is then certain);
- its track band spans its rows, and is at least a third of the image high (``1 / TRACKS_PER_IMAGE``): curve
  distances are in those heights, as the generator's are in track heights (a full-scale track is a fifth to a third
  of the raster);
- on scale (lap 0): a wrapped curve is two chains.

Chains with no scored column (dash pieces shorter than ``2 * EVENT_MARGIN + 1`` columns, crossings) are left out;
at most ``MAX_TRACED`` curves are kept, the longest. The 300-point protocol then runs per chain.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from datamodules.labels import IGNORE_INDEX
from datamodules.layout import TRUTH_ARRAYS as _ARRAYS
from datamodules.synth.generate import EVENT_MARGIN
from datamodules.synth.sample import CurveInfo, Sample

TRACKS_PER_IMAGE = 3
MAX_TRACED = 256


@dataclass(frozen=True)
class Truth:
    """The side channel of a ``Sample`` (its shapes and meaning): K curves over W columns."""

    curve_rows: npt.NDArray[np.float32]  # (K, W)
    curve_classes: npt.NDArray[np.int64]  # (K,)
    curve_tracks: npt.NDArray[np.float32]  # (K, 2)
    curve_scored: npt.NDArray[np.bool_]  # (K, W)
    curve_laps: npt.NDArray[np.int8]  # (K, W)
    curves: tuple[CurveInfo, ...] | None = None  # None: generic curves (a traced label knows no scale)

    def window(self, x0: int, x1: int) -> Truth:
        """The truth of columns [x0, x1)."""
        return Truth(
            self.curve_rows[:, x0:x1],
            self.curve_classes,
            self.curve_tracks,
            self.curve_scored[:, x0:x1],
            self.curve_laps[:, x0:x1],
            self.curves,
        )

    def sample(self, image: npt.NDArray[np.uint8], label: npt.NDArray[np.uint8]) -> Sample:
        return Sample(
            image=image,
            label=label,
            curve_rows=self.curve_rows,
            curve_classes=self.curve_classes,
            curve_tracks=self.curve_tracks,
            curve_scored=self.curve_scored,
            curve_laps=self.curve_laps,
            curves=self.curves,  # type: ignore[arg-type]  # None derives generic curves (Sample.__post_init__)
        )


def write_truth(path: Path, sample: Sample) -> None:
    """A sample's true curves as an ``.npz``: the five side-channel arrays and the curves' scales as JSON."""
    arrays = {name: getattr(sample, name) for name in _ARRAYS}
    infos = np.array(json.dumps([asdict(c) for c in sample.curves]))
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays, curves=infos)


def read_truth(path: Path) -> Truth:
    """The true curves ``write_truth`` wrote; ValueError for a file that is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in _ARRAYS}
            infos = tuple(CurveInfo(**c) for c in json.loads(str(data["curves"])))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a true-curves file of datamodules.export ({exc})") from None
    k, w = arrays["curve_rows"].shape
    shapes = {"curve_classes": (k,), "curve_tracks": (k, 2), "curve_scored": (k, w), "curve_laps": (k, w)}
    for name, shape in shapes.items():
        if arrays[name].shape != shape:
            raise ValueError(f"{path}: {name} has shape {arrays[name].shape}, expected {shape}")
    return Truth(
        arrays["curve_rows"].astype(np.float32, copy=False),
        arrays["curve_classes"].astype(np.int64, copy=False),
        arrays["curve_tracks"].astype(np.float32, copy=False),
        arrays["curve_scored"].astype(bool, copy=False),
        arrays["curve_laps"].astype(np.int8, copy=False),
        infos if len(infos) == k else None,
    )


def _runs(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Vertical runs of ``mask`` (H, W): (column, first row, last row) each (R,), sorted by column, then row."""
    h = mask.shape[0]
    stride = h + 1  # a row index no pixel has keeps the runs of neighbouring columns apart
    r, c = np.nonzero(mask)  # the set pixels only: a few per cent of a label
    key = np.sort(c.astype(np.int64) * stride + r)  # column-major
    cut = np.flatnonzero(np.diff(key) != 1) + 1  # where a run ends and the next begins
    starts = np.concatenate([np.zeros(min(1, len(key)), np.int64), cut])
    ends = np.concatenate([cut - 1, np.full(min(1, len(key)), len(key) - 1, np.int64)])
    cols = key[starts] // stride
    return cols, key[starts] - cols * stride, key[ends] - cols * stride


def _chains(
    cols: npt.NDArray[np.int64], first: npt.NDArray[np.int64], last: npt.NDArray[np.int64], h: int
) -> npt.NDArray[np.int64]:
    """Chain id of every run (R,): runs linked one-to-one with a touching run of the neighbouring column."""
    stride = h + 2  # keys col * stride + row stay ordered by column, then row, for rows -1 .. h
    start_key, end_key = cols * stride + first, cols * stride + last

    def touching(dx: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        # runs of column col + dx with end >= first - 1 and start <= last + 1: a contiguous index range
        lo = np.searchsorted(end_key, (cols + dx) * stride + first - 1, side="left")
        hi = np.searchsorted(start_key, (cols + dx) * stride + last + 1, side="right")
        return lo.astype(np.int64), np.maximum(hi - lo, 0).astype(np.int64)

    back, n_back = touching(-1)
    _, n_fwd = touching(+1)
    linked = n_back == 1
    linked[linked] &= n_fwd[back[linked]] == 1
    head = np.where(linked, back, np.arange(len(cols)))
    while True:  # pointer jumping: every run points at its chain's first run
        nxt = head[head]
        if np.array_equal(nxt, head):
            return head
        head = nxt


def trace_label(label: npt.NDArray[np.uint8], curve_classes: tuple[int, ...]) -> Truth:
    """The curves of a label, traced as the module says.

    Args:
        label: (H, W) uint8 class values, 255 ignored.
        curve_classes: the task's curve classes (``TaskSpec.curve_classes``).

    Returns:
        The truth of K <= ``MAX_TRACED`` curves, ordered by class, then first column.
    """
    h, w = label.shape
    ignored = label == IGNORE_INDEX
    parts = []  # per class: its runs (column, centre, scored, chain), its chains' (class, first column, top, bottom)
    n_chains = 0
    for cls in curve_classes:
        cols, first, last = _runs(label == cls)
        if not len(cols):
            continue
        above = np.where(first > 0, ignored[np.maximum(first - 1, 0), cols], True)  # the edge counts as unsure
        below = np.where(last < h - 1, ignored[np.minimum(last + 1, h - 1), cols], True)
        heads, chain = np.unique(_chains(cols, first, last, h), return_inverse=True)  # chain index of each run (R,)
        start = np.full(len(heads), w, np.int64)
        end = np.full(len(heads), -1, np.int64)
        np.minimum.at(start, chain, cols)
        np.maximum.at(end, chain, cols)
        scored = ~(above | below) & (cols - start[chain] >= EVENT_MARGIN) & (end[chain] - cols >= EVENT_MARGIN)
        top = np.full(len(heads), h, np.int64)
        bottom = np.full(len(heads), -1, np.int64)
        np.minimum.at(top, chain, first)
        np.maximum.at(bottom, chain, last)
        n_scored = np.bincount(chain, weights=scored, minlength=len(heads))
        centre = (first + last) / 2.0
        parts.append((cls, cols, centre, scored, chain + n_chains, start, top, bottom, n_scored))
        n_chains += len(heads)
    if not parts:
        return _empty(w)
    cls_of = np.concatenate([np.full(len(p[5]), p[0], np.int64) for p in parts])  # per chain
    start, top, bottom, n_scored = (np.concatenate([p[i] for p in parts]) for i in (5, 6, 7, 8))
    kept = np.flatnonzero(n_scored > 0)
    kept = kept[np.argsort(-n_scored[kept], kind="stable")[:MAX_TRACED]]  # the longest
    kept = kept[np.lexsort((start[kept], cls_of[kept]))]  # by class, then first column
    slot = np.full(n_chains, -1, np.int64)
    slot[kept] = np.arange(len(kept))
    k = len(kept)
    rows = np.full((k, w), np.nan, np.float32)
    scored_out = np.zeros((k, w), bool)
    for _, cols, centre, scored, chain, *_ in parts:
        mine = slot[chain] >= 0
        rows[slot[chain[mine]], cols[mine]] = centre[mine]
        scored_out[slot[chain[mine]], cols[mine]] = scored[mine]
    mid = (top[kept] + bottom[kept]) / 2.0
    half = np.maximum(h / TRACKS_PER_IMAGE / 2.0, (bottom[kept] - top[kept]) / 2.0)
    tracks = np.stack([mid - half, mid + half], axis=1).astype(np.float32)
    return Truth(rows, cls_of[kept], tracks, scored_out, np.zeros((k, w), np.int8))


def _empty(w: int) -> Truth:
    return Truth(
        np.full((0, w), np.nan, np.float32),
        np.zeros(0, np.int64),
        np.zeros((0, 2), np.float32),
        np.zeros((0, w), bool),
        np.zeros((0, w), np.int8),
    )
