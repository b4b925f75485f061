import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamodules import synth
from datamodules.batching import WidthBucketSampler
from datamodules.collate import padded_size


def _sizes(n, seed=0):
    return [synth.shape(i, seed=seed, task="multiclass") for i in range(n)]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 200), bs=st.integers(1, 17), seed=st.integers(0, 5), epoch=st.integers(0, 5))
def test_every_index_exactly_once_per_epoch(n, bs, seed, epoch):
    sampler = WidthBucketSampler(_sizes(n), bs, seed=seed)
    sampler.set_epoch(epoch)
    batches = list(sampler)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(n))
    assert all(1 <= len(b) <= bs for b in batches)
    assert len(batches) == len(sampler)


def test_deterministic_for_seed_and_epoch_and_reshuffled_across_epochs():
    sizes = _sizes(300)
    a, b = WidthBucketSampler(sizes, 16, seed=7), WidthBucketSampler(sizes, 16, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    b.set_epoch(4)
    assert list(a) != list(b)
    c = WidthBucketSampler(sizes, 16, seed=8)
    c.set_epoch(3)
    assert list(a) != list(c)


def test_batches_share_padded_height_and_have_close_widths():
    sizes = _sizes(2000)
    sampler = WidthBucketSampler(sizes, 16, seed=0)
    useful = padded = 0
    for batch in sampler:
        assert len({padded_size(sizes[i][0]) for i in batch}) == 1
        hs, ws = zip(*(sizes[i] for i in batch))
        useful += sum(h * w for h, w in zip(hs, ws))
        padded += len(batch) * padded_size(max(hs)) * padded_size(max(ws))
    assert useful / padded > 0.9


@pytest.mark.parametrize("world", [2, 3])
def test_shards_cover_every_index_and_have_equal_lengths(world):
    sizes = _sizes(101)
    shards = []
    for rank in range(world):
        s = WidthBucketSampler(sizes, 4, seed=1, num_replicas=world, rank=rank)
        s.set_epoch(2)
        shards.append(list(s))
    assert len({len(s) for s in shards}) == 1
    seen = [i for shard in shards for b in shard for i in b]
    assert set(seen) == set(range(101))
    # Only the padding batches repeat, and they are fewer than one per rank.
    assert len(seen) - 101 < 4 * world


def test_unshuffled_is_stable():
    sizes = _sizes(50)
    s = WidthBucketSampler(sizes, 4, seed=0, shuffle=False)
    first = list(s)
    s.set_epoch(9)
    assert list(s) == first


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        WidthBucketSampler([(10, 10)], 0)
    with pytest.raises(ValueError, match="rank"):
        WidthBucketSampler([(10, 10)], 1, num_replicas=2, rank=2)


def test_lightning_reshuffles_the_batch_sampler_each_epoch():
    from lightning.fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    sizes = _sizes(64)
    sampler = WidthBucketSampler(sizes, 4, seed=0)
    loader = DataLoader(list(range(64)), batch_sampler=sampler)
    orders = []
    for epoch in range(2):
        _set_sampler_epoch(loader, epoch)
        orders.append([list(map(int, b)) for b in loader])
    assert sampler.epoch == 1
    assert orders[0] != orders[1]
    assert np.array_equal(sorted(np.concatenate(orders[0])), np.arange(64))
