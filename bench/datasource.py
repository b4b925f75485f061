"""Can reading from disk keep up with rendering? Rasters per second per core, render against read, full scale.

    python -m bench.datasource [--count 8] [--task binary] [--scale 1.0] [--core 0]

Per task, ``count`` instances are rendered (timed: what a DataLoader worker does on the fly), written in the on-disk
layout (``datamodules.layout``) as PNG and as TIFF the way ``datamodules.export`` writes them, and read back
through ``DiskDataset`` (timed: image made grey, label, true curves; what a worker does with ``--data``), and once
more as PNG without the true curves (the truth traced from the label, as for a hand-labelled scan). The process is
pinned to one core where it can be.

Then the DataLoader workers (and CPUs per trial, one more for training) each source needs to feed the GPU's
training rate, from ``bench/measured/*.json`` (``train_mpx_per_s``, over the mean raster of this run) where that
was measured; without it, it says the rate is not measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from datamodules.datasets import DiskDataset
from datamodules.export import FORMATS
from datamodules.labels import TASKS
from datamodules.layout import CURVES, CURVES_SUFFIX, IMAGES, LABELS, Raster, cut
from datamodules.synth import render
from datamodules.truth import write_truth

MEASURED = Path(__file__).resolve().parent / "measured"


def gpu_rates() -> dict[str, tuple[float, str]]:
    """task -> (training Mpx/s, where it comes from) for every task a measured file gives a rate for."""
    rates: dict[str, tuple[float, str]] = {}
    for path in sorted(MEASURED.glob("*.json")):
        data = json.loads(path.read_text())
        for task, entry in data.get("tasks", {}).items():
            if "train_mpx_per_s" in entry:
                how = f"{entry.get('status', '?')} on {data.get('device', path.stem)} ({path.name})"
                rates.setdefault(task, (float(entry["train_mpx_per_s"]), how))
    return rates


def _timed(fn: Callable[[int], object], n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def measure(task: str, count: int, scale: float, root: Path) -> dict[str, list[float]]:
    """Seconds per raster of each source (render, read png, read tif, read png with the truth traced)."""
    samples = []

    def make(i: int) -> None:
        samples.append(render(i, seed=0, task=task, scale=scale))

    render(count, seed=0, task=task, scale=scale)  # warm-up, untimed: the first render pays for imports and caches
    times = {"render": _timed(make, count)}
    sizes = [s.image.size for s in samples]
    for fmt, (suffix, pil_format, options) in FORMATS.items():
        folder = root / f"{task}-{fmt}"
        for sub in (IMAGES, LABELS, CURVES):
            (folder / sub).mkdir(parents=True)
        rasters, bare = [], []
        for i, s in enumerate(samples):
            name = f"{task}_{i:06d}"
            image, label, curves = (folder / IMAGES / (name + suffix)), folder / LABELS / f"{name}.png", None
            Image.fromarray(s.image).save(image, format=pil_format, **options)
            Image.fromarray(s.label).save(label, format="PNG", compress_level=1)
            curves = folder / CURVES / (name + CURVES_SUFFIX)
            write_truth(curves, s)
            rasters.append(Raster(name, image, label, curves, "train"))
            bare.append(Raster(name, image, label, None, "train"))
        dataset = DiskDataset(task, cut(rasters))
        times[f"read {fmt}"] = _timed(dataset.__getitem__, count)
        if fmt == "png":
            traced = DiskDataset(task, cut(bare))
            times["read png, truth traced"] = _timed(traced.__getitem__, count)
    times["_pixels"] = [float(p) for p in sizes]
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.datasource", description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=8, help="rasters per task (default 8)")
    p.add_argument("--task", choices=(*TASKS, "both"), default="both")
    p.add_argument("--scale", type=float, default=1.0, help="raster scale (default 1.0: full size)")
    p.add_argument("--core", type=int, default=0, help="the core to pin to (default 0)")
    args = p.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    rates = gpu_rates()
    tasks = TASKS if args.task == "both" else (args.task,)
    print(
        f"one core (pinned to {args.core}), {args.count} rasters per task at scale {args.scale:g}, mean time per raster"
    )
    with tempfile.TemporaryDirectory(prefix="datasource-") as tmp:
        for task in tasks:
            times = measure(task, args.count, args.scale, Path(tmp))
            mpx = statistics.mean(times.pop("_pixels")) / 1e6
            gpu = rates.get(task)
            need = gpu[0] / mpx if gpu else None
            print(f"\n{task}: mean raster {mpx:.2f} Mpx")
            if gpu is None:
                print("  GPU rate: not measured (no train_mpx_per_s in bench/measured/*.json); workers not computed")
            else:
                print(f"  GPU rate: {gpu[0]:.2f} Mpx/s training, {gpu[1]}: {need:.1f} rasters/s to feed")
            for source, seconds in times.items():
                mean = statistics.mean(seconds)
                line = f"  {source:<24} {mean * 1000:7.1f} ms   {1 / mean:6.2f} rasters/s per core"
                if need is not None:
                    workers = math.ceil(need * mean)
                    line += f"   {workers} workers ({workers + 1} CPUs per trial) to feed the GPU"
                print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
