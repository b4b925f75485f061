"""Several training processes on one device: per-process and aggregate images/s against one alone.

Binary trains at batch 1, which leaves an H200 mostly idle between small kernels; packing several trials on one
GPU (``--gpus-per-trial 0.5`` and below) uses that idle time. max(``--procs``) processes start once, warm up
(compile included) and then, for each N in ``--procs``, the first N train together for ``--seconds`` while the
rest wait (barriers start and end each round); each reports the steps it finished. All train the task's typical
run-shape batch (the median-area batch of the real sampler, rendered once). The step is the trial's: the
Segmenter's network and loss, AdamW, bf16 autocast on a GPU; a bare loop, which bench/overhead.py shows within a
few percent of Lightning's.

    python -m bench.packing --task binary --procs 1,2,3,4 --seconds 30 --compile on       # on the GPU
    python -m bench.packing --task binary --procs 1,2 --scale 0.05 --base-channels 4 --depth 2 --seconds 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from bench.runshape import pick_batches
from datamodules import synth
from datamodules.collate import Batch, collate
from datamodules.labels import TASKS
from models.compile_mode import COMPILE_CHOICES, Compile
from models.compiled import compile_network
from models.segmenter import Segmenter


def _worker(rank: int, batch: Batch, args: argparse.Namespace, barrier, results) -> None:
    """One packed 'trial': warm up (and compile), then a timed window in every round it takes part in."""
    torch.set_num_threads(1)  # on CPU the comparison is about processes, not threads
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(rank)
    model = Segmenter(args.task, base_channels=args.base_channels, depth=args.depth, max_epochs=50)
    model.net.checkpoint_levels = args.checkpoint_levels
    model.to(device)
    if Compile(args.compile).resolve():
        compile_network(model.net)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images, labels = batch.images.to(device), batch.labels.to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

    def step() -> None:
        with autocast:
            loss = model.criterion(model(images), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    for n in args.counts:
        barrier.wait()
        if rank < n:
            steps, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds:
                step()
                steps += 1
            elapsed = time.perf_counter() - start
            results.put({"procs": n, "rank": rank, "images": steps * len(batch), "seconds": elapsed})
        barrier.wait()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else _rss_gib()
    results.put({"procs": 0, "rank": rank, "peak_gib": peak})


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_rounds(batch: Batch, args: argparse.Namespace) -> tuple[dict[int, list[dict]], float]:
    """Start max(counts) workers; their reports per round (by rank) and the largest peak memory, GiB."""
    ctx = mp.get_context("spawn")  # CUDA cannot be forked into
    size = max(args.counts)
    barrier, results = ctx.Barrier(size), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, batch, args, barrier, results)) for r in range(size)]
    for proc in procs:
        proc.start()
    expected = sum(args.counts) + size
    try:
        reports = [results.get(timeout=args.timeout) for _ in range(expected)]
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} of {size} packed workers failed (exit codes {failed})")
    rounds = {n: sorted((r for r in reports if r["procs"] == n), key=lambda r: r["rank"]) for n in args.counts}
    return rounds, max(r["peak_gib"] for r in reports if r["procs"] == 0)


def main(argv: list[str] | None = None) -> int:
    gpu = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=TASKS, default="binary", help="run shape (default: binary)")
    p.add_argument("--procs", default="1,2,3,4", help="process counts to run, comma-separated (default 1,2,3,4)")
    p.add_argument("--seconds", type=float, default=30.0, help="timed window per process (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first, compile included (default 3)")
    p.add_argument("--scale", type=float, default=1.0 if gpu else 0.1, help="raster scale (default: 1 on GPU)")
    p.add_argument("--base-channels", type=int, default=16, help="U-Net width")
    p.add_argument("--depth", type=int, default=5, help="U-Net depth")
    p.add_argument("--checkpoint-levels", type=int, default=0, help="recompute the N finest levels in backward")
    p.add_argument("--compile", choices=COMPILE_CHOICES, default="auto", help="auto: on where a GPU is")
    p.add_argument("--seed", type=int, default=0, help="data seed")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for a worker's report")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    args.counts = [int(c) for c in args.procs.split(",")]
    if not args.counts or min(args.counts) < 1:
        p.error("--procs takes positive counts, e.g. 1,2,3,4")

    indices = pick_batches(args.task, args.scale, args.seed)["typical"]
    samples = {i: synth.render(i, seed=args.seed, task=args.task, scale=args.scale) for i in set(indices)}
    batch = collate([samples[i] for i in indices])
    b, _, h, w = batch.images.shape
    device = torch.cuda.get_device_name() if gpu else f"cpu ({os.cpu_count()} cores)"
    print(
        f"{args.task} {b}x{h}x{w}, base {args.base_channels}, depth {args.depth}, compile {args.compile}, "
        f"checkpoint_levels {args.checkpoint_levels}; {device}; {args.seconds:g} s windows"
    )
    rounds, peak = run_rounds(batch, args)
    rows = []
    alone = sum(r["images"] / r["seconds"] for r in rounds[1]) if 1 in rounds else float("nan")
    for n, reports in rounds.items():
        rates = [r["images"] / r["seconds"] for r in reports]
        total = sum(rates)
        print(
            f"  {n} process{'es' if n > 1 else '  '}: per process {', '.join(f'{x:.2f}' for x in rates)} img/s; "
            f"aggregate {total:.2f} img/s, {total / alone:.2f}x one alone"
        )
        rows.append({"procs": n, "per_process": rates, "aggregate": total, "ratio": total / alone})
    where = "GPU memory allocated" if gpu else "resident memory"
    print(f"  peak {where} of one process: {peak:.2f} GiB")
    if args.json:
        summary = {"task": args.task, "batch": f"{b}x{h}x{w}", "device": device, "peak_gib": peak, "rows": rows}
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
