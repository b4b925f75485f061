"""Lightning overhead: one CPU epoch through ``L.Trainer`` vs a bare PyTorch loop, same model, data and steps.

Run: ``python bench/overhead.py [--repeats 5 --batches 40]``. Alternates the two runners, prints every run,
the medians and the ratio Lightning / bare (target <= 1.05).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning as L
import numpy as np
import torch

from datamodules.collate import Batch, collate
from datamodules.synth import Sample
from models.segmenter import Segmenter


def synthetic_sample(rng: np.random.Generator, h: int, w: int) -> Sample:
    """A random two-curve raster (not the real generator): smooth curves on noisy paper."""
    x = np.arange(w)
    label = np.zeros((h, w), dtype=np.uint8)
    rows = []
    for k, base in enumerate((h // 3, 2 * h // 3)):
        r = base + (h / 8) * np.sin(2 * np.pi * x / rng.uniform(80, 300) + rng.uniform(0, 6.3))
        r0 = np.clip(np.round(r).astype(int), 0, h - 2)
        label[r0, x] = label[r0 + 1, x] = k + 1
        rows.append(r0 + 0.5)
    image = np.where(label > 0, 40, 230).astype(np.int16) + rng.integers(-20, 20, (h, w))
    return Sample(
        image=np.clip(image, 0, 255).astype(np.uint8),
        label=label,
        curve_rows=np.stack(rows).astype(np.float32),
        curve_classes=np.array([1, 2], dtype=np.int64),
        curve_tracks=np.array([[0, h - 1], [0, h - 1]], dtype=np.float32),
    )


def make_batches(n: int, batch_size: int, h: int, w: int, seed: int = 0) -> list[Batch]:
    rng = np.random.default_rng(seed)
    return [collate([synthetic_sample(rng, h, w) for _ in range(batch_size)]) for _ in range(n)]


def run_lightning(model: Segmenter, batches: list[Batch]) -> float:
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        accelerator="cpu",
        devices=1,
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    start = time.perf_counter()
    trainer.fit(model, loader)
    return time.perf_counter() - start


def run_bare(model: Segmenter, batches: list[Batch]) -> float:
    start = time.perf_counter()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=model.hparams.lr, weight_decay=model.hparams.weight_decay)
    for batch in torch.utils.data.DataLoader(batches, batch_size=None):
        opt.zero_grad()
        loss = model.criterion(model(batch.images), batch.labels)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each kind, alternated")
    parser.add_argument("--batches", type=int, default=40, help="batches per epoch")
    parser.add_argument("--batch-size", type=int, default=2, help="samples per batch")
    parser.add_argument("--height", type=int, default=64, help="raster height (multiple of 32)")
    parser.add_argument("--width", type=int, default=512, help="raster width (multiple of 32)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    batches = make_batches(args.batches, args.batch_size, args.height, args.width)
    torch.manual_seed(0)
    # constant LR: the bare loop needs no scheduler, so both runners do the same arithmetic
    template = Segmenter("multiclass", base_channels=16, depth=4, lr_schedule="constant", max_epochs=1)
    run_bare(copy.deepcopy(template), batches[:2])  # warm-up (allocator, kernels)
    times: dict[str, list[float]] = {"lightning": [], "bare": []}
    for i in range(args.repeats):
        for name, runner in (("lightning", run_lightning), ("bare", run_bare))[:: 1 if i % 2 == 0 else -1]:
            seconds = runner(copy.deepcopy(template), batches)
            times[name].append(seconds)
            print(f"run {i} {name:9s} {seconds:7.3f} s")
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"median lightning {med['lightning']:.3f} s, bare {med['bare']:.3f} s")
    print(f"ratio lightning / bare = {med['lightning'] / med['bare']:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
