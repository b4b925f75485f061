"""Curves read off validation rasters into LAS files, scored in their own units against the generator's truth.

    python -m bench.las --perfect --task binary [--count 50] [--scale 0.5]
    python -m bench.las --best runs/my-study --task multiclass [--count 50] [--perfect]

For each raster: its exact registration (``datamodules.synth.render_registered``), the logits of the best
trial's model (``--best``) and/or logits made from the true label (``--perfect``: the ceiling of the tracing and
LAS path, which must reach R^2 >= 0.99 for every curve type), traced and written as LAS 2.0 (``models.las``),
read back with ``lasio`` and compared with the true curve of every registered curve (a backup trace's values
where its primary is off scale). Rasters: the model's validation split (then instances past its training set,
never seen either), or the full preset's validation split for ``--perfect`` alone.

Per curve type, in the curve's own unit (log10 of ohm-m for resistivity), on two grids: the LAS depth grid, and
the published protocol's 300 points spread over each curve's true depth range. R^2 pools every curve of the
type: 1 - sum of squared errors / sum of squared deviations of each true curve from its own mean; MAE is the mean
absolute error. Both are over the samples where the truth is known (scored columns on both sides) and the LAS
has a value; ``coverage`` is the share of those true samples that have one. Exit 1 if ``--perfect`` misses
R^2 >= 0.99 on a type.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lasio
import numpy as np
import numpy.typing as npt
import torch

from datamodules.cli import Exit, Parser, UsageError, whole_number
from datamodules.labels import IGNORE_INDEX, TASKS
from datamodules.registration import CurveScale, Registration
from datamodules.synth import Sample, render_registered
from datamodules.synth.register import mnemonic
from datamodules.welllog import WellLogDataModule
from models.inference import LoadedCheckpoint, load_checkpoint, logits_of, pick_device
from models.las import DEFAULT_STEP, digitise, write_las
from models.modes import TaskMode, mode_for
from results import las_scores
from results.las_scores import LasScore
from results.query import best_trials
from study.predict import best_checkpoint
from study.presets import FULL

POINTS = 300
CEILING_R2 = 0.99
UNITS = {"log": "log10 "}  # a log curve is scored in log10 of its unit


@dataclass
class Tally:
    """What one curve type has added up over the rasters."""

    unit: str = ""
    curves: int = 0
    truth: int = 0  # true samples on the LAS grid
    sse: list[float] = field(default_factory=lambda: [0.0, 0.0])  # per grid: LAS, 300 points
    sst: list[float] = field(default_factory=lambda: [0.0, 0.0])
    abs_err: list[float] = field(default_factory=lambda: [0.0, 0.0])
    n: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, grid: int, true: npt.NDArray[np.float64], pred: npt.NDArray[np.float64]) -> None:
        both = np.isfinite(true) & np.isfinite(pred)
        t = true[np.isfinite(true)]
        if t.size:
            self.sst[grid] += float(((true[both] - t.mean()) ** 2).sum())
        e = pred[both] - true[both]
        self.sse[grid] += float((e**2).sum())
        self.abs_err[grid] += float(np.abs(e).sum())
        self.n[grid] += int(both.sum())

    def r2(self, grid: int) -> float:
        return 1.0 - self.sse[grid] / self.sst[grid] if self.sst[grid] > 0 else float("nan")

    def mae(self, grid: int) -> float:
        return self.abs_err[grid] / self.n[grid] if self.n[grid] else float("nan")

    def coverage(self) -> float:
        return self.n[0] / self.truth if self.truth else float("nan")

    def null_share(self) -> float:
        """The share of the known true samples on the LAS grid whose LAS value is NULL."""
        return 1.0 - self.coverage()


def truth_logits(mode: TaskMode, label: npt.NDArray[np.uint8]) -> torch.Tensor:
    """Confident logits (1, C, H, W) that predict ``label`` (H, W) exactly (ignored pixels as background)."""
    t = torch.from_numpy(np.where(label == IGNORE_INDEX, 0, label).astype(np.int64))
    if mode.is_binary:
        return (20.0 * (2.0 * t.float() - 1.0))[None, None]
    onehot = torch.nn.functional.one_hot(t, mode.num_classes).permute(2, 0, 1).float()
    return (20.0 * (2.0 * onehot - 1.0))[None]


def true_columns(
    sample: Sample, registration: Registration
) -> dict[str, tuple[str, CurveScale, npt.NDArray[np.float64]]]:
    """mnemonic -> (curve type, its registration, (W,) true value per column, NaN where not scored). A backup
    trace's value fills its primary's columns where the primary is off scale."""
    by_name = {s.mnemonic: (t, s) for t, s in registration.curves()}
    out = {}
    for k, info in enumerate(sample.curves):
        if info.backup_of >= 0 or mnemonic(info.kind) not in by_name:
            continue
        t, scale = by_name[mnemonic(info.kind)]
        top, bottom = registration.band(t)
        values = np.full(registration.width, np.nan)
        for j in [k] + [j for j, c in enumerate(sample.curves) if c.backup_of == k]:
            m = sample.curve_scored[j] & ~np.isfinite(values)
            pos = (bottom - sample.curve_rows[j].astype(np.float64)) / (bottom - top)
            values[m] = sample.curves[j].value(pos[m], sample.curve_laps[j][m].astype(np.int64))
        out[scale.mnemonic] = (info.kind, scale, values)
    return out


def _at(values: npt.NDArray[np.float64], x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Linear interpolation of (n,) ``values`` at fractional indices ``x``; NaN unless both neighbours are known."""
    n = values.size
    inside = (x >= 0) & (x <= n - 1)
    x0 = np.clip(np.floor(x).astype(np.int64), 0, n - 1)
    x1 = np.minimum(x0 + 1, n - 1)
    frac = np.clip(x - x0, 0.0, 1.0)
    between = np.where(frac == 0, values[x0], (1 - frac) * values[x0] + frac * values[x1])
    return np.where(inside, between, np.nan)


def score_file(path: Path, sample: Sample, registration: Registration, tallies: dict[str, Tally]) -> None:
    """Read a LAS file back with lasio and add each registered curve's errors to its type's tally."""
    las = lasio.read(str(path))
    depths = np.asarray(las.index, np.float64)
    cols = registration.column_at(depths)
    for name, (kind, scale, values) in true_columns(sample, registration).items():
        log = scale.scale == "log"
        tr = np.log10(values) if log else values
        true = _at(tr, cols)
        pred = np.asarray(las[name], np.float64)
        pred = np.log10(np.where(pred > 0, pred, np.nan)) if log else pred
        tally = tallies.setdefault(kind, Tally(unit=UNITS.get(scale.scale, "") + scale.unit))
        tally.curves += 1
        tally.truth += int(np.isfinite(true).sum())
        tally.add(0, true, pred)
        known = np.flatnonzero(np.isfinite(true))
        if known.size < 2:
            continue
        grid = np.linspace(depths[known[0]], depths[known[-1]], POINTS)
        step = depths[1] - depths[0]
        tally.add(1, _at(tr, registration.column_at(grid)), _at(pred, (grid - depths[0]) / step))


def rasters(task: str, count: int, seed: int, scale: float, n_instances: int) -> list[int]:
    """The first ``count`` validation indices of a data set of ``n_instances``, then indices past it."""
    data = WellLogDataModule(task, n_instances, 1, scale=scale, seed=seed)
    val = list(data.val_set.indices)[:count]
    return val + list(range(n_instances, n_instances + count - len(val)))


def run(
    task: str,
    indices: list[int],
    *,
    seed: int,
    scale: float,
    step: float,
    out: Path,
    model: LoadedCheckpoint | None,
    perfect: bool,
) -> dict[str, dict[str, Tally]]:
    """Score every source on every raster; source name -> curve type -> tally."""
    mode = mode_for(task)
    sources = ([("model", model)] if model is not None else []) + ([("perfect", None)] if perfect else [])
    tallies: dict[str, dict[str, Tally]] = {name: {} for name, _ in sources}
    for i, index in enumerate(indices):
        sample, registration = render_registered(index, seed=seed, task=task, scale=scale)
        for name, ckpt in sources:
            logits = logits_of(ckpt, sample.image) if ckpt is not None else truth_logits(mode, sample.label)
            path = out / f"{task}-{index}-{name}.las"
            write_las(digitise(mode, logits, registration, step).las, step, path)
            score_file(path, sample, registration, tallies[name])
        if (i + 1) % 10 == 0:
            print(f"  {task}: {i + 1}/{len(indices)} rasters", file=sys.stderr, flush=True)
    return tallies


def table(tallies: dict[str, Tally]) -> list[str]:
    head = ("curve type", "unit", "curves", "null share", "R^2 (LAS grid)", "MAE (LAS grid)", "R^2 (300 points)",
            "MAE (300 points)")  # fmt: skip
    lines = [f"| {' | '.join(head)} |", f"|{'---|' * len(head)}"]
    for kind in sorted(tallies):
        t = tallies[kind]
        lines.append(
            f"| {kind} | {t.unit} | {t.curves} | {t.null_share():.3f} | {t.r2(0):.4f} | {t.mae(0):.4g} | "
            f"{t.r2(1):.4f} | {t.mae(1):.4g} |"
        )
    return lines


def scores(
    task: str,
    source: str,
    trial_id: str | None,
    tallies: dict[str, Tally],
    *,
    rasters: int,
    scale: float,
    seed: int,
    step: float,
) -> list[LasScore]:
    """The rows ``results.las_scores`` keeps of one source's tallies."""
    return [
        LasScore(
            task,
            source,
            trial_id,
            kind,
            t.unit,
            t.curves,
            t.coverage(),
            t.null_share(),
            t.r2(0),
            t.mae(0),
            t.r2(1),
            t.mae(1),
            rasters,
            scale,
            seed,
            step,
        )
        for kind, t in sorted(tallies.items())
    ]


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m bench.las", description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=TASKS, required=True, help="the task")
    p.add_argument("--best", type=Path, metavar="STUDY_DIR", help="score the best --task trial of this study")
    p.add_argument("--perfect", action="store_true", help="score the true labels through the same path (ceiling)")
    p.add_argument("--count", type=whole_number(1), default=50, help="rasters (default 50)")
    p.add_argument("--scale", type=float, help="raster scale (default: the model's; 0.5 for --perfect alone)")
    p.add_argument("--seed", type=int, help="data seed (default: the model's; 0 for --perfect alone)")
    p.add_argument("--step", type=float, default=DEFAULT_STEP, help=f"LAS depth step (default {DEFAULT_STEP})")
    p.add_argument("--out", type=Path, help="keep the LAS files here (default: a temporary directory)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.best is None and not args.perfect:
            raise UsageError("give --best STUDY_DIR, --perfect or both")
        if not args.step > 0:
            raise UsageError(f"--step must be > 0, got {args.step:g}")
        model = load_checkpoint(best_checkpoint(args.best, args.task), pick_device()) if args.best else None
        trial_id = _best_trial_id(args.best, args.task) if args.best else None
    except UsageError as exc:
        print(f"bench.las: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = model.data if model is not None else {}
    seed = args.seed if args.seed is not None else int(data.get("seed", 0))
    scale = args.scale if args.scale is not None else float(data.get("scale", 0.5))
    n_instances = int(data.get("n_instances", FULL.tasks[args.task].n_instances))
    indices = rasters(args.task, args.count, seed, scale, n_instances)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        tallies = run(args.task, indices, seed=seed, scale=scale, step=args.step, out=out, model=model,
                      perfect=args.perfect)  # fmt: skip
    took = time.perf_counter() - start
    print(
        f"{args.task}: {len(indices)} rasters at scale {scale:g} (seed {seed}), LAS step {args.step:g} ({took:.0f} s)"
    )
    ok = True
    for name, by_kind in tallies.items():
        what = f"best trial of {args.best}" if name == "model" else "perfect (true labels, the ceiling)"
        print(f"\n{what}:")
        print("\n".join(table(by_kind)))
        if name == "perfect":
            low = [k for k, t in by_kind.items() if not t.r2(0) >= CEILING_R2 or not t.r2(1) >= CEILING_R2]
            ok &= not low
            print(f"check R^2 >= {CEILING_R2} on every type: " + ("PASS" if not low else "FAIL: " + ", ".join(low)))
    if args.best is not None:
        rows = [
            row
            for name, by_kind in tallies.items()
            for row in scores(
                args.task,
                name,
                trial_id if name == "model" else None,
                by_kind,
                rasters=len(indices),
                scale=scale,
                seed=seed,
                step=args.step,
            )
        ]
        print(f"\nsaved into the study's report: {las_scores.record(args.best, args.task, rows)}")
    return Exit.OK if ok else 1


def _best_trial_id(study_dir: Path, task: str) -> str:
    best = best_trials(study_dir)
    return str(best[best["task"] == task]["trial_id"].iloc[0])


if __name__ == "__main__":
    sys.exit(main())
