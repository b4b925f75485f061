"""Width-bucketed batch sampler: groups rasters of similar size so padding stays small.

Batches are formed from sizes alone (``synth.shape``), never by rendering. The order is a pure function of
(seed, epoch): Lightning calls ``set_epoch`` every epoch, and a resumed run sees the same batches as an
uninterrupted one, because no RNG state has to survive in a checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise

import numpy as np
from torch.utils.data import Sampler

from datamodules.collate import padded_size


class WidthBucketSampler(Sampler[list[int]]):
    """Yields lists of dataset positions; every position exactly once per epoch (before sharding).

    Positions are grouped by padded height (the collate rounds H up to a multiple of 32), then sorted by
    width inside each group with a random tie-break and a random cut offset, so batch membership changes
    from epoch to epoch while neighbours in a batch stay close in width. Batch order is shuffled.
    Under DDP each rank takes every ``num_replicas``-th batch; the batch list is padded by repeating its
    first batches so every rank runs the same number of steps.
    """

    def __init__(
        self,
        sizes: Sequence[tuple[int, int]],
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.heights = np.array([padded_size(h) for h, _ in sizes], dtype=np.int64)
        self.widths = np.array([w for _, w in sizes], dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        # Lightning calls set_epoch on `dataloader.sampler` and `dataloader.batch_sampler.sampler`, never on the
        # batch sampler itself: pointing `sampler` here is what makes it reshuffle each epoch (tested).
        self.sampler = self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch]) if self.shuffle else None
        tiebreak = rng.random(len(self.widths)) if rng is not None else np.arange(len(self.widths))
        order = np.lexsort((tiebreak, self.widths, self.heights))  # by padded H, then W, then tie-break
        batches: list[list[int]] = []
        for h in np.unique(self.heights):
            group = order[self.heights[order] == h]
            start = int(rng.integers(self.batch_size)) if rng is not None and len(group) > self.batch_size else 0
            cuts = [0, *range(start or self.batch_size, len(group), self.batch_size), len(group)]
            batches += [group[a:b].tolist() for a, b in pairwise(cuts) if b > a]
        if rng is not None:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches()
        if self.num_replicas > 1:
            pad = -len(batches) % self.num_replicas
            batches = batches + batches[:pad]
            batches = batches[self.rank :: self.num_replicas]
        return iter(batches)

    def __len__(self) -> int:
        return -(-len(self._all_batches()) // self.num_replicas)
