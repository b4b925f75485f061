"""Useful (non-padded) pixel fraction of the multiclass training set at full scale, batch 16.

Compares the width-bucketed sampler with naive sequential batching over the same sizes. Sizes come from
``synth.shape`` (nothing is rendered). Run: ``python -m bench.padding``.
"""

from __future__ import annotations

import argparse

import numpy as np

from datamodules import synth
from datamodules.batching import WidthBucketSampler
from datamodules.collate import padded_size

TARGET = 0.95


def useful_fraction(sizes: list[tuple[int, int]], batches: list[list[int]]) -> float:
    useful = padded = 0
    for batch in batches:
        hs = [sizes[i][0] for i in batch]
        ws = [sizes[i][1] for i in batch]
        useful += sum(h * w for h, w in zip(hs, ws))
        padded += len(batch) * padded_size(max(hs)) * padded_size(max(ws))
    return useful / padded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=12_000, help="training instances (15,000 x 0.8)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--epochs", type=int, default=3, help="epochs to average the sampler over")
    args = parser.parse_args(argv)

    sizes = [synth.shape(i, seed=args.seed, task="multiclass") for i in range(args.instances)]
    naive = [list(range(i, min(i + args.batch_size, len(sizes)))) for i in range(0, len(sizes), args.batch_size)]
    sampler = WidthBucketSampler(sizes, args.batch_size, seed=args.seed)
    bucketed = []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        bucketed.append(useful_fraction(sizes, list(sampler)))
    per_image = useful_fraction(sizes, [[i] for i in range(len(sizes))])
    total_mpx = sum(h * w for h, w in sizes) / 1e6
    print(f"instances={len(sizes)} batch={args.batch_size} useful Mpx={total_mpx:.0f}")
    print(f"naive sequential batching : useful fraction {useful_fraction(sizes, naive):.4f}")
    print(
        f"width-bucketed sampler    : useful fraction {np.mean(bucketed):.4f} "
        f"(min {min(bucketed):.4f} over {args.epochs} epochs)"
    )
    print(f"ceiling (batch 1, 32-px rounding only): {per_image:.4f}")
    verdict = "PASS" if min(bucketed) >= TARGET else "FAIL"
    print(f"target >= {TARGET}: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
