"""What the metrics give a perfect segmenter, and degenerate ones, on real validation rasters.

    python -m bench.ceiling [--n 200] [--scale 1.0] [--task both]

For each task, the first ``--n`` rasters of the full preset's validation split are scored through the study's
own metrics (``models.metrics``) with predictions made from their labels: the ground truth itself (what a perfect
segmenter would get: the ceiling), all background, every pixel one curve class, stripes every 3 rows, and the
truth shifted down by 1, 2 and 3 px. Prints one table per task and checks that the perfect row is the best on
every metric and that each degenerate row is worse on the objective and the curve errors.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import torch

from datamodules.collate import collate
from datamodules.labels import IGNORE_INDEX, TASKS
from datamodules.synth import render
from datamodules.welllog import WellLogDataModule
from models.metric_names import DEFAULT_OBJECTIVE, VAL_METRICS
from models.metrics import (
    CURVE_COVERAGE,
    CURVE_MAE,
    DICE_FG,
    F1_TOL2,
    IOU_FG,
    MAE_300,
    MIOU_ALL,
    R2_300,
    SegmentationMetrics,
)
from models.modes import TaskMode, mode_for
from study.presets import FULL

COLUMNS = (CURVE_MAE, CURVE_COVERAGE, R2_300, MAE_300, DICE_FG, IOU_FG, MIOU_ALL, F1_TOL2)
CURVE_ERRORS = (CURVE_MAE, R2_300, MAE_300)  # each degenerate row must lose on these and the objective


def _logits(mode: TaskMode, label: torch.Tensor) -> torch.Tensor:
    """Confident logits that predict ``label`` (B, H, W) exactly (ignored pixels as background)."""
    label = torch.where(label == IGNORE_INDEX, 0, label)
    if mode.is_binary:
        return (20.0 * (2.0 * label.float() - 1.0)).unsqueeze(1)
    onehot = torch.nn.functional.one_hot(label, mode.num_classes).permute(0, 3, 1, 2).float()
    return 20.0 * (2.0 * onehot - 1.0)


def predictions(mode: TaskMode) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Name -> a label map made from the true label (B, H, W)."""
    curve = mode.curve_classes[0]

    def stripes(t: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(t)
        for i, row in enumerate(range(0, t.shape[1], 3)):
            out[:, row] = mode.curve_classes[i % len(mode.curve_classes)]
        return out

    def shifted(k: int) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda t: torch.roll(torch.where(t == IGNORE_INDEX, 0, t), k, dims=1)

    return {
        "perfect (ground truth)": lambda t: t,
        "all background": torch.zeros_like,
        f"all class {curve}": lambda t: torch.full_like(t, curve),
        "stripes every 3 rows": stripes,
        "truth shifted 1 px": shifted(1),
        "truth shifted 2 px": shifted(2),
        "truth shifted 3 px": shifted(3),
    }


def score(task: str, n: int, scale: float, seed: int) -> dict[str, dict[str, float]]:
    mode = mode_for(task)
    preset = FULL.tasks[task]
    data = WellLogDataModule(task, preset.n_instances, preset.batch_size, scale=scale, seed=seed)
    indices = list(data.val_set.indices)[:n]
    makers = predictions(mode)
    metrics = {name: SegmentationMetrics(mode) for name in makers}
    for i, index in enumerate(indices):
        batch = collate([render(index, seed=seed, task=task, scale=scale)])
        for name, make in makers.items():
            metrics[name].update(_logits(mode, make(batch.labels)), batch)
        if (i + 1) % 25 == 0:
            print(f"  {task}: {i + 1}/{len(indices)} rasters", file=sys.stderr, flush=True)
    return {name: {k: float(v) for k, v in m.compute().items()} for name, m in metrics.items()}


def check(rows: dict[str, dict[str, float]]) -> list[str]:
    """The failures of: perfect best on every metric; each other row worse on the objective and curve errors."""
    perfect = rows["perfect (ground truth)"]
    failures = []
    for name, row in rows.items():
        for metric in COLUMNS:
            better = row[metric] > perfect[metric] if VAL_METRICS[metric] == "max" else row[metric] < perfect[metric]
            if better:
                failures.append(f"{name} beats perfect on {metric}")
        if name == "perfect (ground truth)":
            continue
        for metric in (DEFAULT_OBJECTIVE, *CURVE_ERRORS):
            if row[metric] == perfect[metric]:
                failures.append(f"{name} ties perfect on {metric}")
    return failures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="validation rasters per task (default 200)")
    p.add_argument("--scale", type=float, default=1.0, help="raster scale (default 1.0, full size)")
    p.add_argument("--task", choices=[*TASKS, "both"], default="both")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0, the studies' default)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    ok = True
    for task in TASKS if args.task == "both" else (args.task,):
        start = time.perf_counter()
        rows = score(task, args.n, args.scale, args.seed)
        print(f"\n{task}: {args.n} validation rasters at scale {args.scale} ({time.perf_counter() - start:.0f} s)")
        print(f"| prediction | {' | '.join(COLUMNS)} |")
        print(f"|---|{'---|' * len(COLUMNS)}")
        for name, row in rows.items():
            print(f"| {name} | {' | '.join(f'{row[m]:.4f}' for m in COLUMNS)} |")
        failures = check(rows)
        ok &= not failures
        print("checks: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
