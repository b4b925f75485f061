import numpy as np
import pytest
import torch

from datamodules.collate import PAPER, STRIDE, collate
from datamodules.labels import IGNORE_INDEX
from tests.helpers.samples import full_height_sample


@pytest.mark.parametrize("sizes", [[(60, 200)], [(60, 200), (75, 333)], [(32, 64), (33, 65), (31, 700)]])
def test_shapes_are_multiples_of_stride_and_sizes_recorded(sizes):
    samples = [full_height_sample(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    batch = collate(samples)
    b, c, h, w = batch.images.shape
    assert (b, c) == (len(sizes), 1)
    assert h % STRIDE == 0 and w % STRIDE == 0
    assert h == -(-max(s[0] for s in sizes) // STRIDE) * STRIDE
    assert w == -(-max(s[1] for s in sizes) // STRIDE) * STRIDE
    assert batch.labels.shape == (b, h, w)
    assert batch.images.dtype == torch.float32 and batch.labels.dtype == torch.int64
    assert batch.sizes.tolist() == [list(s) for s in sizes]


def test_padding_is_paper_and_ignore_and_content_preserved():
    samples = [full_height_sample(40, 100, seed=1), full_height_sample(70, 300, seed=2, n_curves=1)]
    batch = collate(samples)
    for i, s in enumerate(samples):
        h, w = s.image.shape
        img = batch.images[i, 0]
        lab = batch.labels[i]
        np.testing.assert_array_equal((img[:h, :w] * 255).round().byte().numpy(), s.image)
        np.testing.assert_array_equal(lab[:h, :w].numpy(), s.label)
        assert torch.all(img[h:, :] == PAPER) and torch.all(img[:, w:] == PAPER)
        assert torch.all(lab[h:, :] == IGNORE_INDEX) and torch.all(lab[:, w:] == IGNORE_INDEX)
        k = len(s.curve_classes)
        np.testing.assert_array_equal(batch.curve_rows[i, :k, :w].numpy(), s.curve_rows)
        assert torch.isnan(batch.curve_rows[i, :, w:]).all()
        assert batch.curve_classes[i, :k].tolist() == s.curve_classes.tolist()
        assert (batch.curve_classes[i, k:] == -1).all()
        assert torch.isnan(batch.curve_tracks[i, k:]).all()
        np.testing.assert_array_equal(batch.curve_scored[i, :k, :w].numpy(), s.curve_scored)
        np.testing.assert_array_equal(batch.curve_laps[i, :k, :w].numpy(), s.curve_laps)
        assert not batch.curve_scored[i, :, w:].any() and not batch.curve_scored[i, k:].any()
        assert (batch.curve_laps[i, :, w:] == 0).all() and (batch.curve_laps[i, k:] == 0).all()
    assert batch.curve_scored.dtype == torch.bool and batch.curve_laps.dtype == torch.int8


def test_collate_does_not_depend_on_batch_neighbours_for_content():
    a, b = full_height_sample(50, 120, seed=3), full_height_sample(50, 900, seed=4)
    alone = collate([a])
    paired = collate([a, b])
    h, w = alone.images.shape[-2:]
    assert torch.equal(paired.images[0, :, :h, :w], alone.images[0])
    assert torch.equal(paired.labels[0, :h, :w], alone.labels[0])
    assert (paired.labels[0, :, w:] == IGNORE_INDEX).all()
