"""Training throughput at a task's run shape, with the trial's exact Trainer settings.

Times training steps on fixed, pre-rendered batches (batch 1 for binary, 16 for multiclass, through the
collate): the widest raster of the data set and a typical (median-area) batch from the width-bucketed
sampler; then a few validation steps (forward + metrics). Prints images/s, Mpx/s, peak memory and the
projected 50-epoch wall time beside the reference (110 min binary, 550 min multiclass on one GPU).

``--ragged-steps N`` instead trains N steps drawn from the real sampler (real rasters, real padded sizes, one
epoch's order) and prints how many graphs torch.compile built for them, the seconds it spent, and the
throughput with and without that compile time.

    python -m bench.runshape --task binary           # full scale on a GPU, 0.125 scale on CPU
    python -m bench.runshape --task multiclass --scale 0.1 --steps 4
    python -m bench.runshape --task binary --ragged-steps 40 --compile on
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from datamodules import synth
from datamodules.batching import WidthBucketSampler
from datamodules.collate import Batch, collate, padded_size
from datamodules.datasets import RasterDataset
from datamodules.labels import TASKS
from models.compile_mode import COMPILE_CHOICES, Compile
from models.compiled import CompileWatch, compile_network
from models.segmenter import Segmenter
from study.presets import FULL
from study.trainer import build_trainer

REFERENCE_MINUTES = {"binary": 110.0, "multiclass": 550.0}


class StepTimer(L.Callback):
    """Wall time of every train and validation batch, synchronised with the device."""

    def __init__(self) -> None:
        self.train: list[float] = []
        self.val: list[float] = []

    def _sync(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_batch_start(self, *args) -> None:
        self._sync()
        self._t = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self._sync()
        self.train.append(time.perf_counter() - self._t)

    def on_validation_batch_start(self, *args) -> None:
        self._sync()
        self._t = time.perf_counter()

    def on_validation_batch_end(self, *args) -> None:
        self._sync()
        self.val.append(time.perf_counter() - self._t)


def build_model(task: str, args: argparse.Namespace) -> Segmenter:
    """The trial's Segmenter with this run's compile and memory settings."""
    model = Segmenter(task, base_channels=args.base_channels, depth=args.depth, max_epochs=50)
    model.net.checkpoint_levels = args.checkpoint_levels
    if args.channels_last:  # experiment: NHWC convolutions (not the trial's setting)
        model = model.to(memory_format=torch.channels_last)
    if Compile(args.compile).resolve():
        compile_network(model.net)
    return model


def _peak_gib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _loader(batch: Batch, n: int) -> DataLoader:
    return DataLoader([batch] * n, batch_size=None, collate_fn=lambda b: b)


def _padded_mpx(sizes: list[tuple[int, int]], batches: list[list[int]]) -> float:
    return sum(collate_shape(sizes, b) for b in batches) / 1e6


def collate_shape(sizes: list[tuple[int, int]], batch: list[int]) -> int:
    h = padded_size(max(sizes[i][0] for i in batch))
    w = padded_size(max(sizes[i][1] for i in batch))
    return len(batch) * h * w


def pick_batches(task: str, scale: float, seed: int) -> dict[str, list[int]]:
    """The widest instance (repeated to the batch size) and the median-area bucketed batch."""
    preset = FULL.tasks[task]
    n_train = round(preset.n_instances * 0.8)
    sizes = [synth.shape(i, seed=seed, task=task, scale=scale) for i in range(n_train)]
    widest = max(range(n_train), key=lambda i: sizes[i][1] * sizes[i][0])
    batches = sorted(WidthBucketSampler(sizes, preset.batch_size, seed=seed), key=lambda b: collate_shape(sizes, b))
    full = [b for b in batches if len(b) == preset.batch_size] or batches
    return {"widest": [widest] * preset.batch_size, "typical": full[len(full) // 2]}


def epoch_mpx(
    task: str, scale: float, seed: int, *, n_instances: int | None = None, batch_size: int | None = None
) -> tuple[float, float]:
    """Padded Mpx per epoch (train, val) of the task's data set at `scale` (the full preset's unless given)."""
    preset = FULL.tasks[task]
    n = n_instances or preset.n_instances
    batch = batch_size or preset.batch_size
    n_train = round(n * 0.8)
    sizes = [synth.shape(i, seed=seed, task=task, scale=scale) for i in range(n)]
    train = WidthBucketSampler(sizes[:n_train], batch, seed=seed)
    val = WidthBucketSampler(sizes[n_train:], batch, seed=seed, shuffle=False)
    return _padded_mpx(sizes[:n_train], list(train)), _padded_mpx(sizes[n_train:], list(val))


def measure(task: str, indices: list[int], args: argparse.Namespace) -> dict[str, float | str]:
    t0 = time.perf_counter()
    samples = [synth.render(i, seed=args.seed, task=task, scale=args.scale) for i in sorted(set(indices))]
    render_s = (time.perf_counter() - t0) / len(samples)
    by_index = dict(zip(sorted(set(indices)), samples))
    batch = collate([by_index[i] for i in indices])
    b, _, h, w = batch.images.shape
    model = build_model(task, args)
    timer = StepTimer()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    row: dict[str, float | str] = {"batch": f"{b}x{h}x{w}", "render_s_per_image": render_s}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(
            epochs=1,
            root_dir=Path(tmp),
            callbacks=[timer],
            limit_train_batches=args.warmup + args.steps,
            limit_val_batches=args.warmup + args.val_steps,
        )
        try:
            trainer.fit(model, _loader(batch, args.warmup + args.steps), _loader(batch, args.warmup + args.val_steps))
        except torch.cuda.OutOfMemoryError as exc:
            row["error"] = f"out of memory: {str(exc).splitlines()[0]}"
            return row
    step = statistics.median(timer.train[args.warmup :])
    val_step = statistics.median(timer.val[args.warmup :])
    mpx = b * h * w / 1e6
    row.update(
        step_s=step,
        val_step_s=val_step,
        images_per_s=b / step,
        mpx_per_s=mpx / step,
        val_mpx_per_s=mpx / val_step,
        peak_gib=_peak_gib(),
    )
    return row


def ragged(task: str, args: argparse.Namespace) -> dict[str, float | int]:
    """Train ``args.ragged_steps`` steps in the real sampler's order (epoch 0) over real rasters."""
    preset = FULL.tasks[task]
    dataset = RasterDataset(task, range(round(preset.n_instances * 0.8)), seed=args.seed, scale=args.scale)
    sizes = dataset.sizes()
    batches = list(WidthBucketSampler(sizes, preset.batch_size, seed=args.seed))[: args.ragged_steps]
    shapes = [(padded_size(max(sizes[i][0] for i in b)), padded_size(max(sizes[i][1] for i in b))) for b in batches]
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=args.workers,
        pin_memory=torch.cuda.is_available(),
    )
    model = build_model(task, args)
    timer, watch = StepTimer(), CompileWatch()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(
            epochs=1,
            root_dir=Path(tmp),
            callbacks=[timer, watch],
            limit_train_batches=len(batches),
            limit_val_batches=0,
        )
        trainer.fit(model, train_dataloaders=loader)
    images = sum(len(b) for b in batches)
    mpx = sum(len(b) * h * w for b, (h, w) in zip(batches, shapes)) / 1e6
    train_s = sum(timer.train)
    steady_s = max(train_s - watch.seconds, 1e-9)
    return {
        "steps": len(batches),
        "heights": len({h for h, _ in shapes}),
        "widths": len({w for _, w in shapes}),
        "graphs_compiled": watch.graphs,
        "compile_seconds": watch.seconds,
        "train_seconds": train_s,
        "images_per_s": images / train_s,
        "images_per_s_without_compile": images / steady_s,
        "mpx_per_s_without_compile": mpx / steady_s,
        "median_step_s": statistics.median(timer.train),
        "peak_gib": _peak_gib(),
    }


def main(argv: list[str] | None = None) -> int:
    gpu = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=TASKS, required=True, help="which run shape")
    p.add_argument("--scale", type=float, default=1.0 if gpu else 0.125, help="raster scale (default: 1 on GPU)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps per shape")
    p.add_argument("--val-steps", type=int, default=3, help="timed validation steps per shape")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--base-channels", type=int, default=16, help="U-Net width")
    p.add_argument("--depth", type=int, default=5, help="U-Net depth")
    p.add_argument("--seed", type=int, default=0, help="data seed")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--channels-last", action="store_true", help="experiment: channels_last memory format")
    p.add_argument(
        "--compile",
        choices=COMPILE_CHOICES,
        default="auto",
        help="torch.compile the U-Net (models/compiled.py); auto: on where a GPU is (default: auto)",
    )
    p.add_argument(
        "--checkpoint-levels", type=int, default=0, help="recompute the N finest U-Net levels in backward (default 0)"
    )
    p.add_argument("--shapes", default="widest,typical", help="fixed shapes to time (default: widest,typical)")
    p.add_argument(
        "--ragged-steps", type=int, default=0, help="train N steps in the real sampler's order instead of fixed shapes"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=min(8, (os.cpu_count() or 1) - 1) if gpu else 0,
        help="DataLoader workers rendering rasters for --ragged-steps (default: up to 8 on GPU, 0 on CPU)",
    )
    args = p.parse_args(argv)

    device = torch.cuda.get_device_name() if gpu else "cpu"
    compiled = Compile(args.compile).resolve()
    extras = ", channels_last" * args.channels_last + f", compile {'on' if compiled else 'off'}"
    extras += f", checkpoint_levels {args.checkpoint_levels}" if args.checkpoint_levels else ""
    print(f"{args.task}: scale {args.scale}, base {args.base_channels}, depth {args.depth}, device {device}{extras}")
    if args.ragged_steps:
        row = ragged(args.task, args)
        print(
            f"  ragged: {row['steps']} steps, {row['widths']} padded widths, {row['heights']} padded heights; "
            f"compile {row['compile_seconds']:.1f} s; {row['images_per_s']:.2f} img/s overall, "
            f"{row['images_per_s_without_compile']:.2f} img/s and {row['mpx_per_s_without_compile']:.3g} Mpx/s "
            f"without compile time; median step {row['median_step_s']:.3f} s; peak {row['peak_gib']:.1f} GiB"
        )
        print(f"graphs compiled: {row['graphs_compiled']}")
        if args.json:
            summary = {"task": args.task, "scale": args.scale, "device": device, "ragged": row}
            args.json.write_text(json.dumps(summary, indent=2))
        return 0
    rows = {}
    for shape, indices in pick_batches(args.task, args.scale, args.seed).items():
        if shape not in args.shapes.split(","):
            continue
        rows[shape] = row = measure(args.task, indices, args)
        if "error" in row:
            print(f"  {shape:8s} {row['batch']}: {row['error']}")
            continue
        print(
            f"  {shape:8s} {row['batch']}: step {row['step_s']:.3f} s, {row['images_per_s']:.2f} img/s, "
            f"{row['mpx_per_s']:.1f} Mpx/s train, {row['val_mpx_per_s']:.1f} Mpx/s val, "
            f"peak {row['peak_gib']:.1f} GiB, "
            f"render {row['render_s_per_image']:.3f} s/img"
        )
    typical = rows.get("typical", {"error": "not run"})
    if "error" not in typical:
        train_mpx, val_mpx = epoch_mpx(args.task, args.scale, args.seed)
        epoch_s = train_mpx / typical["mpx_per_s"] + val_mpx / typical["val_mpx_per_s"]
        minutes = 50 * epoch_s / 60
        ref = REFERENCE_MINUTES[args.task]
        images = FULL.tasks[args.task].n_instances
        workers = images / epoch_s * typical["render_s_per_image"]
        print(
            f"  projected 50 epochs at scale {args.scale}: {minutes:.1f} min (reference {ref:.0f} min at full scale "
            f"on a GPU; ratio {minutes / ref:.2f}); an epoch is {train_mpx:.0f}+{val_mpx:.0f} padded Mpx; "
            f"keeping up needs >= {workers:.1f} DataLoader workers"
        )
        rows["projection"] = {"minutes_50_epochs": minutes, "reference_minutes": ref, "workers_needed": workers}
    if args.json:
        args.json.write_text(json.dumps({"task": args.task, "scale": args.scale, "device": device, **rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
