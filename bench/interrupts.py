"""What Ctrl-C and --resume cost: an uninterrupted study and the same study interrupted N times, side by side.

    python -m bench.interrupts [--interrupts 4 --seed 20261128]

Run from the repository root, like all of bench (a dev tool, not part of the package): it drives the CLI with
the tests' ``tests.helpers.driver``.

Both studies run the real CLI (a binary study on tiny rasters, 2 trials x 4 epochs, 2 at once, CPU) with their own
HOME. The interrupted one gets SIGINT at a seeded random moment within the epoch after each start's first new
one, then the same command plus ``--resume``, until it finishes (a signal that comes after the study ended stops
nothing and is not counted). Printed: wall time of each, the factor, and where the difference goes:
Ray start-up per driver start (process start to the first trial start), trial start-up (``setup_seconds`` the
trials report: data, model, Trainer, checkpoint restore) and the epochs run twice. Short studies are dominated
by these start-ups, which is why the factor is a benchmark figure and not a test.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.helpers.driver import Driver, progress

TASK = ["--task", "binary", "--num-samples", "2", "--epochs", "4", "--instances", "24", "--scale", "0.08"]
CPU = ["--no-dashboard", "--no-report", "--cpus-per-trial", "1", "--max-concurrent", "2"]


def _trial_stats(study_dir: Path) -> tuple[list[float], int]:
    """setup_seconds of every trial (re)start, and epochs reported more than once, from Ray's result logs."""
    setups, rerun = [], 0
    for result in sorted(study_dir.glob("binary/trial_*/result.json")):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        epochs = Counter(r["epoch"] for r in rows)
        rerun += sum(n - 1 for n in epochs.values())
        seen = set()
        for r in rows:  # one setup per process the trial ran in
            if r.get("setup_seconds") is not None and r["setup_seconds"] not in seen:
                seen.add(r["setup_seconds"])
                setups.append(float(r["setup_seconds"]))
    return setups, rerun


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.interrupts", description=__doc__.splitlines()[0])
    parser.add_argument("--interrupts", type=int, default=4, help="SIGINTs sent to the interrupted study")
    parser.add_argument("--seed", type=int, default=20261128, help="seed of the interrupt moments")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        storage = root / "runs"
        calm = Driver(["--storage", str(storage), "--name", "calm", *TASK, *CPU], root / "h1")
        if calm.wait() != 0:
            print("the uninterrupted study failed", file=sys.stderr)
            return 1
        calm_wall = time.monotonic() - calm.t0

        command = ["--storage", str(storage), "--name", "rough", *TASK, *CPU]
        starts, sent, rough_wall, code, seen = [], 0, 0.0, None, {}
        while code != 0:
            driver = Driver(command if not starts else [*command, "--resume"], root / "h2")
            # At a random moment within the epoch after this driver's first new one: every start does some work.
            if sent < args.interrupts and driver.wait_for_progress(storage / "rough", seen, timeout=300):
                time.sleep(rng.uniform(0.0, 1.5))
                driver.proc.send_signal(signal.SIGINT)
            code = driver.wait()
            sent += code == 130  # a signal after the study ended stops nothing (exit 0)
            seen = progress(storage / "rough")
            rough_wall += time.monotonic() - driver.t0
            starts.append(driver.first_trial_at)
            if code not in (0, 130):
                print(f"the interrupted study exited {code}", file=sys.stderr)
                return 1

        calm_setup, _ = _trial_stats(storage / "calm")
        rough_setup, rerun = _trial_stats(storage / "rough")
    ray_starts = [s for s in starts if s is not None]
    print(f"uninterrupted: {calm_wall:.1f} s, Ray start-up {calm.first_trial_at or float('nan'):.1f} s, "
          f"trial start-ups {len(calm_setup)} x {sum(calm_setup) / max(1, len(calm_setup)):.1f} s")  # fmt: skip
    print(f"interrupted {sent}x: {rough_wall:.1f} s over {len(starts)} driver starts, Ray start-up "
          f"{sum(ray_starts):.1f} s in all, trial start-ups {len(rough_setup)} x "
          f"{sum(rough_setup) / max(1, len(rough_setup)):.1f} s, epochs run twice: {rerun}")  # fmt: skip
    extra_startup = (sum(ray_starts) - (calm.first_trial_at or 0.0)) + (sum(rough_setup) - sum(calm_setup)) / 2
    print(f"factor interrupted / uninterrupted: {rough_wall / calm_wall:.2f}; "
          f"without the extra start-ups: {(rough_wall - extra_startup) / calm_wall:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
