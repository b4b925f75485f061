"""Step-order parity: Lightning's optimisation loop equals a hand-written correct one, weight for weight.

Why the loop belongs to Lightning: the Segmenter never calls ``zero_grad``, ``backward`` or ``step``. A
hand-rolled loop is easy to get subtly wrong (``zero_grad`` drifting between ``backward`` and ``step``, or
never called, so gradients accumulate) and such loops still train, so nothing crashes. This test pins the
order: N steps through ``L.Trainer`` match the reference order (zero_grad, forward, loss, backward, step,
scheduler step) to 1e-6, and the same comparison flags both broken orders by far more than 1e-4.
"""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from torch.optim.lr_scheduler import OneCycleLR

from datamodules.collate import collate
from models.segmenter import Segmenter
from tests.helpers.samples import one_track_sample

N_STEPS = 6
LR, WD = 1e-2, 1e-4


def _batches():
    return [collate([one_track_sample("binary", h=32, w=64, seed=i)]) for i in range(N_STEPS)]


def _reference(model: Segmenter, batches, order: str) -> dict[str, torch.Tensor]:
    model = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    sched = OneCycleLR(opt, max_lr=LR, total_steps=N_STEPS, pct_start=0.3)
    for batch in batches:
        if order == "correct":
            opt.zero_grad()
        loss = model.criterion(model(batch.images), batch.labels)
        loss.backward()
        if order == "zero_grad_before_step":
            opt.zero_grad()
        opt.step()
        sched.step()
    return model.state_dict()


def _max_diff(a, b) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def lightning_and_start():
    torch.manual_seed(0)
    model = Segmenter("binary", base_channels=4, depth=2, lr=LR, weight_decay=WD, lr_schedule="onecycle")
    start = copy.deepcopy(model)
    trainer = L.Trainer(
        max_steps=N_STEPS,
        deterministic=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        accelerator="cpu",
    )
    trainer.fit(model, torch.utils.data.DataLoader(_batches(), batch_size=None))
    torch.use_deterministic_algorithms(False)  # do not leak the global flag into other tests
    assert trainer.global_step == N_STEPS
    return model.state_dict(), start


def test_lightning_matches_reference_loop(lightning_and_start):
    trained, start = lightning_and_start
    assert _max_diff(trained, start.state_dict()) > 1e-3  # it did train
    assert _max_diff(trained, _reference(start, _batches(), "correct")) <= 1e-6


@pytest.mark.parametrize("order", ["zero_grad_before_step", "never_zero"])
def test_comparison_flags_broken_orders(lightning_and_start, order):
    trained, start = lightning_and_start
    assert _max_diff(trained, _reference(start, _batches(), order)) > 1e-4
