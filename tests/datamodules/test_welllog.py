import pytest
import torch

from datamodules.welllog import WellLogDataModule


def _batches(dm, workers):
    dm.hparams.num_workers = workers
    loader = dm.train_dataloader()
    loader.batch_sampler.set_epoch(1)
    return list(loader)


def test_two_workers_yield_exactly_the_batches_of_zero_workers():
    dm = WellLogDataModule("multiclass", 12, 3, scale=0.06, seed=5)
    a, b = _batches(dm, 0), _batches(dm, 2)
    assert len(a) == len(b) > 1
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.images, y.images)
        assert torch.equal(x.labels, y.labels)
        assert torch.equal(x.sizes, y.sizes)
        assert torch.equal(x.curve_rows.nan_to_num(-1), y.curve_rows.nan_to_num(-1))


def test_train_and_val_are_disjoint_index_ranges_covering_everything():
    dm = WellLogDataModule("binary", 10, 1, scale=0.06, val_fraction=0.2)
    train, val = dm.train_set.indices, dm.val_set.indices
    assert set(train).isdisjoint(val)
    assert sorted([*train, *val]) == list(range(10))
    assert len(val) == 2


def test_every_training_raster_once_per_epoch():
    dm = WellLogDataModule("binary", 9, 2, scale=0.06)
    seen = sum(len(b) for b in dm.train_dataloader())
    assert seen == dm.n_train


def test_class_frequencies_are_a_distribution_with_rare_curves():
    freqs = WellLogDataModule("multiclass", 10, 2, scale=0.25).class_frequencies(4)
    assert len(freqs) == 3
    assert sum(freqs) == pytest.approx(1.0)
    assert freqs[0] > 0.8
    assert 0 < freqs[1] < 0.1
    assert 0 < freqs[2] < 0.1


@pytest.mark.parametrize(("kwargs", "match"), [({"task": "nope"}, "task"), ({"n_instances": 1}, "n_instances")])
def test_bad_arguments(kwargs, match):
    args = {"task": "binary", "n_instances": 10, "batch_size": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        WellLogDataModule(**args)
