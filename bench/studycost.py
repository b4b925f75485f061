"""Device-hours of a study: ASHA's expected epochs times measured per-epoch times, beside full runs.

Per-epoch time of a task = its epoch's padded pixels (the real sampler over the preset's rasters, train and
validation) over the per-pixel rates in a measured file (``bench/measured/<device>.json``, written from the
device runs; each task marked ``measured`` or ``projected``). ASHA (grace g, reduction factor r, max_t T)
places rungs at g, g r, g r^2, ... below T, as Ray's ASHAScheduler does; a trial runs to the first rung, and the
top 1/r of the trials reaching a rung run on to the next (the last ones to T), so a trial's expected epochs are

    g + (1/r)(g r - g) + (1/r^2)(g r^2 - g r) + ... + (1/r^k)(T - g r^(k-1))

computed exactly (fractions). Ray decides asynchronously: a trial is promoted when it beats the (1 - 1/r)
quantile of those that reached the rung before it, so the first arrivals are always promoted; a Monte Carlo
line shows what that costs when trials run one after another on one device.

    python -m bench.studycost --preset full
    python -m bench.studycost --preset full --measured bench/measured/h200.json --simulate 20000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from pathlib import Path

import numpy as np

from bench.runshape import REFERENCE_MINUTES, epoch_mpx
from study.presets import PRESETS

MEASURED = Path(__file__).with_name("measured") / "h200.json"
BASELINE_RUNS = 4  # a hand-run study: four full-length trials per task


def asha_rungs(grace: int, reduction: int, max_t: int) -> list[int]:
    """Ray's ASHAScheduler milestones for one bracket: grace * reduction**k, k < log_r(max_t / grace) + 1."""
    n = int(math.log(max_t / grace) / math.log(reduction) + 1)
    return [grace * reduction**k for k in range(n) if grace * reduction**k <= max_t]


def expected_epochs(grace: int, reduction: int, max_t: int) -> Fraction:
    """Expected epochs one trial runs when the top 1/reduction of the trials at each rung continue."""
    rungs = asha_rungs(grace, reduction, max_t)
    ends = [*rungs[1:], max_t]
    total, share = Fraction(rungs[0]), Fraction(1)
    for rung, end in zip(rungs, ends):
        share /= reduction
        total += share * max(0, end - rung)
    return total


def simulate_ray_rule(trials: int, grace: int, reduction: int, max_t: int, runs: int, seed: int = 0) -> float:
    """Mean epochs per trial under Ray's asynchronous cutoff, trials run one after another.

    Each trial has one quality for all rungs (a good trial stays good) and trials arrive in random order;
    at a rung a trial stops if it is below the ``1 - 1/reduction`` quantile (numpy's linear interpolation,
    as Ray computes it) of the trials recorded there before it; the first to arrive always continues.
    """
    rng = np.random.default_rng(seed)
    rungs = asha_rungs(grace, reduction, max_t)
    q = (1 - 1 / reduction) * 100
    total = 0
    for _ in range(runs):
        recorded: list[list[float]] = [[] for _ in rungs]
        for quality in rng.random(trials):
            epochs = max_t
            for i, rung in enumerate(rungs):
                seen = recorded[i]
                stop = bool(seen) and quality < np.percentile(seen, q)
                seen.append(quality)
                if stop:
                    epochs = rung
                    break
            total += epochs
    return total / (runs * trials)


@dataclass(frozen=True)
class TaskCost:
    task: str
    status: str
    epoch_seconds: float
    trial_epochs: float  # expected epochs per trial

    def hours(self, epochs: float) -> float:
        return epochs * self.epoch_seconds / 3600


def task_costs(preset_name: str, measured: dict, seed: int = 0) -> list[TaskCost]:
    preset = PRESETS[preset_name]
    per_trial = float(expected_epochs(preset.grace_period, preset.reduction_factor, preset.epochs))
    costs = []
    for task, tp in preset.tasks.items():
        rates = measured["tasks"][task]
        train_mpx, val_mpx = epoch_mpx(task, tp.scale, seed, n_instances=tp.n_instances, batch_size=tp.batch_size)
        seconds = train_mpx / rates["train_mpx_per_s"] + val_mpx / rates["val_mpx_per_s"]
        costs.append(TaskCost(task, rates["status"], seconds, per_trial))
    return costs


def from_runshape(base: dict, runs: dict[str, Path]) -> dict:
    """A measured file: ``base`` with each task's rates replaced by a runshape JSON's typical batch, if it ran."""
    out = json.loads(json.dumps(base))
    for task, path in runs.items():
        if not path.is_file():
            continue
        run = json.loads(path.read_text())
        typical = run.get("typical", {})
        if "mpx_per_s" not in typical:
            continue
        out["device"], out["date"] = run["device"], date.today().isoformat()
        out["source"] = "bench/runshape.py on the device (bench/gpu_check.sh): Trainer and model only, bf16-mixed"
        out["tasks"][task] = {
            "status": "measured",
            "batch": typical["batch"],
            "train_mpx_per_s": typical["mpx_per_s"],
            "val_mpx_per_s": typical["val_mpx_per_s"],
            "derivation": f"{path.name}: the typical batch's median train and validation steps",
        }
    return out


def _task_path(text: str) -> tuple[str, Path]:
    task, _, path = text.partition("=")
    if task not in PRESETS["full"].tasks or not path:
        raise argparse.ArgumentTypeError(f"expected TASK=PATH with TASK binary or multiclass, got {text!r}")
    return task, Path(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="full", help="study preset (default: full)")
    p.add_argument("--measured", type=Path, default=MEASURED, help=f"per-pixel rates (default: {MEASURED})")
    p.add_argument("--simulate", type=int, default=2000, help="Monte Carlo runs of Ray's rule (0: skip)")
    p.add_argument(
        "--runshape",
        type=_task_path,
        action="append",
        default=[],
        help="TASK=runshape.json: take that task's rates from this run instead (repeatable)",
    )
    p.add_argument("--write", type=Path, help="write the rates used (measured file format) here")
    args = p.parse_args(argv)
    preset = PRESETS[args.preset]
    measured = from_runshape(json.loads(args.measured.read_text()), dict(args.runshape))
    if args.write:
        args.write.write_text(json.dumps(measured, indent=2) + "\n")
    rungs = asha_rungs(preset.grace_period, preset.reduction_factor, preset.epochs)
    per_trial = expected_epochs(preset.grace_period, preset.reduction_factor, preset.epochs)
    n, full = preset.num_samples, preset.epochs
    print(
        f"preset {preset.name}: {n} trials per task, {full} epochs, ASHA grace {preset.grace_period}, "
        f"reduction {preset.reduction_factor}: rungs {'/'.join(map(str, rungs))}"
    )
    print(
        f"expected epochs per trial {float(per_trial):.2f} (= {per_trial}), {float(n * per_trial):.1f} per task "
        f"against {n * full} without early stopping and {BASELINE_RUNS * full} for {BASELINE_RUNS} full runs"
    )
    ray_epochs = None
    if args.simulate:
        ray_epochs = simulate_ray_rule(n, preset.grace_period, preset.reduction_factor, full, args.simulate)
        print(
            f"Ray's asynchronous rule, trials one after another ({args.simulate} simulated studies): "
            f"{ray_epochs:.2f} epochs per trial, {ray_epochs / float(per_trial):.2f}x the 1/{preset.reduction_factor} "
            "model (the first arrivals at a rung are always promoted)"
        )
    print(f"per-epoch rates: {args.measured} ({measured['device']}, {measured['date']}; {measured['source']})")
    costs = task_costs(args.preset, measured)
    head = f"{'task':10s} {'epoch':>8s}  {'rates':9s} {'ASHA study':>11s} {f'{BASELINE_RUNS} full runs':>11s}"
    print(f"{head} {'reference ' + str(BASELINE_RUNS) + ' runs':>17s}  study / reference")
    study = base = ref = 0.0
    for c in costs:
        ref_h = BASELINE_RUNS * REFERENCE_MINUTES[c.task] / 60 if preset.name == "full" else math.nan
        s, b = c.hours(n * c.trial_epochs), c.hours(BASELINE_RUNS * full)
        study, base, ref = study + s, base + b, ref + ref_h
        print(
            f"{c.task:10s} {c.epoch_seconds:7.1f}s  {c.status:9s} {s:10.1f}h {b:10.1f}h "
            f"{ref_h:10.1f}h ({REFERENCE_MINUTES[c.task]:.0f} min/run)  {s / ref_h:.2f}x"
        )
    print(f"{'total':10s} {'':8s}  {'':9s} {study:10.1f}h {base:10.1f}h {ref:10.1f}h {'':15s}  {study / ref:.2f}x")
    if ray_epochs is not None:
        print(f"under Ray's rule with trials one after another: {study * ray_epochs / float(per_trial):.1f}h in total")
    print("device-hours at one trial per device; 'projected' rows rest on assumed rates (see the measured file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
