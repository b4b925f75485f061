"""Generator speed on one core: full-scale 12,800 x 640 renders and random-size renders.

OMP_NUM_THREADS=1 python bench/datagen.py [--n 20] [--task multiclass] [--random 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from datamodules.labels import TASKS
from datamodules.synth import _render_with_shape, render

TARGET_S = 0.3
FULL = (640, 12800)


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20, help="full-scale instances per task (default 20)")
    p.add_argument("--random", type=int, default=20, help="random-size instances per task (default 20)")
    p.add_argument("--task", choices=[*TASKS, "both"], default="both", help="task(s) to time")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    args = p.parse_args(argv)
    if args.n < 1 or args.random < 0:
        p.error("--n must be >= 1 and --random >= 0")
    tasks = list(TASKS) if args.task == "both" else [args.task]
    _render_with_shape(*FULL, 10_000, seed=args.seed, task=tasks[0])  # warm-up (noise bank, imports)
    ok = True
    for task in tasks:
        ts = np.array(
            [_time(lambda i=i, t=task: _render_with_shape(*FULL, i, seed=args.seed, task=t)) for i in range(args.n)]
        )
        med, p95 = float(np.median(ts)), float(np.percentile(ts, 95))
        mpx = FULL[0] * FULL[1] / 1e6
        print(
            f"{task:10s} {FULL[1]}x{FULL[0]} n={args.n}: median {med:.3f} s  p95 {p95:.3f} s  "
            f"max {ts.max():.3f} s  {mpx / med:.1f} Mpx/s"
        )
        ok &= med <= TARGET_S
        if args.random:
            tr = [_time(lambda i=i, t=task: render(i, seed=args.seed, task=t)) for i in range(args.random)]
            print(f"{task:10s} random sizes n={args.random}: mean {np.mean(tr):.3f} s  max {np.max(tr):.3f} s")
    print(f"target median <= {TARGET_S} s: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
