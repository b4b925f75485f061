"""Activation checkpointing: the same function and gradients as the plain network, same keys. That it saves
less is measured with bench's instrument (``bench.memory.saved_bytes``), in tests/bench/test_memory.py."""

from __future__ import annotations

import pytest
import torch

from models.unet import UNet

# The parameter names of a depth-1 U-Net as checkpoints have always stored them: options must not change them.
DEPTH1_KEYS = [
    "stem.0.weight", "stem.1.weight", "stem.1.bias", "stem.3.weight", "stem.4.weight", "stem.4.bias",
    "downs.0.1.0.weight", "downs.0.1.1.weight", "downs.0.1.1.bias", "downs.0.1.3.weight", "downs.0.1.4.weight",
    "downs.0.1.4.bias", "ups.0.reduce.1.weight", "ups.0.reduce.1.bias", "ups.0.block.0.weight",
    "ups.0.block.1.weight", "ups.0.block.1.bias", "ups.0.block.3.weight", "ups.0.block.4.weight",
    "ups.0.block.4.bias", "head.weight", "head.bias",
]  # fmt: skip


def _loss_and_grads(net: UNet, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    net.zero_grad(set_to_none=True)
    loss = net(x).square().mean()
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in net.named_parameters()}


@pytest.mark.parametrize(("depth", "levels"), [(2, 1), (3, 2), (3, 4), (5, 1)])
def test_checkpointing_gives_identical_loss_and_gradients(depth, levels):
    torch.manual_seed(0)
    plain = UNet(1, 3, base_channels=4, depth=depth)
    ckpt = UNet(1, 3, base_channels=4, depth=depth, checkpoint_levels=levels)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.rand(2, 1, 64, 96)
    loss_a, grads_a = _loss_and_grads(plain, x)
    loss_b, grads_b = _loss_and_grads(ckpt, x)
    assert torch.equal(loss_a, loss_b)
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, rtol=0, atol=0, msg=name)


def test_checkpointing_is_inert_without_grad():
    torch.manual_seed(0)
    plain = UNet(1, 1, base_channels=4, depth=3).eval()
    ckpt = UNet(1, 1, base_channels=4, depth=3, checkpoint_levels=2).eval()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.rand(1, 1, 32, 64)
    with torch.no_grad():
        assert torch.equal(plain(x), ckpt(x))


def test_parameter_names_unchanged_by_options():
    assert list(UNet(1, 1, 4, depth=1).state_dict()) == DEPTH1_KEYS
    assert list(UNet(1, 1, 4, depth=1, checkpoint_levels=2).state_dict()) == DEPTH1_KEYS
    plain, ckpt = UNet(1, 3, 4, depth=4), UNet(1, 3, 4, depth=4, checkpoint_levels=3)
    ckpt.load_state_dict(plain.state_dict())  # strict: an old checkpoint loads into the new options
    assert list(plain.state_dict()) == list(ckpt.state_dict())


@pytest.mark.parametrize("levels", [-1, 4])
def test_invalid_checkpoint_levels_raise(levels):
    with pytest.raises(ValueError, match="checkpoint_levels"):
        UNet(1, 1, 4, depth=2, checkpoint_levels=levels)
