"""Loss contracts: finite, blind to IGNORE_INDEX, minimal at the truth, differentiable, padding-free."""

from __future__ import annotations

import pytest
import torch

from datamodules.collate import collate
from datamodules.labels import IGNORE_INDEX
from models.loss_catalogue import LOSSES, loss_params
from models.losses import build_loss, class_weights_from_frequencies
from models.modes import mode_for
from tests.helpers.samples import one_track_sample, oracle_logits

CASES = [(task, name) for task, names in LOSSES.items() for name in names]
FREQUENCIES = (0.96, 0.025, 0.015)


def _data(task):
    batch = collate([one_track_sample(task, h=48, w=100, seed=1), one_track_sample(task, h=64, w=128, seed=2)])
    torch.manual_seed(0)
    logits = torch.randn(2, mode_for(task).out_channels, *batch.labels.shape[1:])
    return logits, batch


def _loss(task, name):
    """Every parameter of the loss set away from its default (weights from frequencies where it takes them)."""
    values = {"pos_weight": 3.0, "class_weighting": "inverse_sqrt", "dice_weight": 2.0, "focal_gamma": 1.0,
              "focal_alpha": 0.75, "tversky_alpha": 0.2, "tversky_beta": 0.8}  # fmt: skip
    params = {p.name: values.get(p.name, p.default) for p in LOSSES[task][name].params}
    return build_loss(task, name, params, class_frequencies=FREQUENCIES if task == "multiclass" else None)


def test_every_loss_parameter_is_one_typed_parameter():
    params = loss_params()  # raises if a name is declared twice with different types or defaults
    assert {p.name for specs in LOSSES.values() for s in specs.values() for p in s.params} == set(params)
    for p in params.values():
        assert isinstance(p.default, p.type)


@pytest.mark.parametrize(("task", "name"), CASES)
def test_finite_and_gradients_flow(task, name):
    logits, batch = _data(task)
    logits.requires_grad_(True)
    loss = _loss(task, name)(logits, batch.labels)
    assert loss.ndim == 0
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize(("task", "name"), CASES)
def test_ignored_pixels_do_not_count(task, name):
    logits, batch = _data(task)
    ignored = (batch.labels == IGNORE_INDEX).unsqueeze(1)  # (B, 1, H, W), includes padding
    assert ignored.any()
    fn = _loss(task, name)
    base = fn(logits, batch.labels)
    other = torch.where(ignored, torch.randn_like(logits) * 50, logits)
    assert fn(other, batch.labels) == pytest.approx(float(base), abs=1e-6)
    elsewhere = torch.where(ignored, logits, logits + torch.randn_like(logits))
    assert abs(float(fn(elsewhere, batch.labels)) - float(base)) > 1e-4


@pytest.mark.parametrize(("task", "name"), CASES)
def test_truth_is_near_minimal(task, name):
    logits, batch = _data(task)
    fn = _loss(task, name)
    perfect = float(fn(oracle_logits(task, batch.labels), batch.labels))
    assert perfect < 1e-3
    assert perfect < float(fn(logits, batch.labels))


@pytest.mark.parametrize(("task", "name"), CASES)
def test_padding_invariance(task, name):
    sample = one_track_sample(task, h=48, w=100, seed=5)
    alone = collate([sample])  # 64 x 128
    wide = collate([sample, one_track_sample(task, h=64, w=300, seed=6)])  # 64 x 320
    torch.manual_seed(1)
    fixed = torch.randn(1, mode_for(task).out_channels, 64, 320)
    padded_logits = torch.where(wide.labels[:1].unsqueeze(1) == IGNORE_INDEX, torch.randn_like(fixed) * 9, fixed)
    fn = _loss(task, name)
    a = fn(fixed[..., :128], alone.labels)
    b = fn(padded_logits, wide.labels[:1])
    assert float(a) == pytest.approx(float(b), abs=1e-6)
    # and a batch whose second sample is all padding scores the same as the sample alone
    blank = torch.full_like(wide.labels[1:], IGNORE_INDEX)
    c = fn(torch.cat([padded_logits, torch.randn_like(fixed)]), torch.cat([wide.labels[:1], blank]))
    assert float(c) == pytest.approx(float(a), abs=1e-6)


def test_bf16_logits_compute_in_float32():
    logits, batch = _data("multiclass")
    fn = build_loss("multiclass", "ce_dice")
    low = fn(logits.bfloat16(), batch.labels)
    assert low.dtype == torch.float32
    assert float(low) == pytest.approx(float(fn(logits.bfloat16().float(), batch.labels)), abs=1e-6)


def test_pos_weight_and_class_weights_change_the_loss():
    logits, batch = _data("binary")
    assert float(build_loss("binary", "bce", {"pos_weight": 10.0})(logits, batch.labels)) != pytest.approx(
        float(build_loss("binary", "bce")(logits, batch.labels))
    )
    logits, batch = _data("multiclass")
    weighted = build_loss("multiclass", "ce", {"class_weighting": "inverse"}, class_frequencies=FREQUENCIES)
    assert float(weighted(logits, batch.labels)) != pytest.approx(
        float(build_loss("multiclass", "ce")(logits, batch.labels))
    )


@pytest.mark.parametrize(("task", "name"), [("binary", "ce"), ("multiclass", "bce"), ("binary", "lovasz")])
def test_unknown_loss_raises_listing_allowed(task, name):
    with pytest.raises(ValueError, match=next(iter(LOSSES[task]))):
        build_loss(task, name)


def test_a_parameter_the_loss_does_not_take_raises():
    with pytest.raises(ValueError, match="takes pos_weight"):
        build_loss("binary", "bce", {"focal_gamma": 2.0})
    with pytest.raises(ValueError, match="needs the measured class frequencies"):
        build_loss("multiclass", "ce", {"class_weighting": "inverse"})


def test_wrong_number_of_class_frequencies_raises():
    with pytest.raises(ValueError, match="3 values"):
        build_loss("multiclass", "ce", {"class_weighting": "inverse"}, class_frequencies=(0.9, 0.1))


def test_class_weights_from_frequencies():
    freqs = (0.98, 0.01, 0.0001)
    assert class_weights_from_frequencies(freqs, "none") == (1.0, 1.0, 1.0)
    inv = class_weights_from_frequencies(freqs, "inverse")
    assert inv[0] == 1.0
    assert inv[1] == pytest.approx(98.0 if inv[1] < 50 else 50.0)
    assert inv[2] == 50.0  # clipped
    sq = class_weights_from_frequencies([980, 10, 0], "inverse_sqrt")  # counts work too
    assert sq[:2] == pytest.approx((1.0, 98**0.5))
    assert sq[2] == 50.0
    with pytest.raises(ValueError, match="inverse_sqrt"):
        class_weights_from_frequencies(freqs, "median")
