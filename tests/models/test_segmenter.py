"""Segmenter contracts: validated arguments, saved hyperparameters, logged keys from metric_names."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from datamodules.collate import collate
from models.metric_names import METRICS
from models.segmenter import Segmenter
from tests.helpers.samples import one_track_sample


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "regression"}, "binary, multiclass"),
        ({"task": "binary", "loss": "ce"}, "bce_dice"),
        ({"task": "multiclass", "loss": "bce"}, "ce_dice"),
        ({"task": "binary", "lr_schedule": "step"}, "onecycle"),
        ({"task": "binary", "depth": 7}, "depth"),
        ({"task": "binary", "loss": "bce", "loss_params": {"class_weighting": "inverse"}}, "takes pos_weight"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Segmenter(**kwargs)


def test_hyperparameters_saved_with_resolved_loss():
    model = Segmenter(
        "multiclass",
        base_channels=4,
        depth=2,
        lr=3e-3,
        loss_params={"class_weighting": "inverse"},
        class_frequencies=(0.9, 0.06, 0.04),
    )
    assert model.hparams.task == "multiclass"
    assert model.hparams.loss == "ce_dice"
    assert model.hparams.lr == 3e-3
    assert model.hparams.loss_params == {"class_weighting": "inverse"}
    assert model.hparams.class_frequencies == (0.9, 0.06, 0.04)
    assert model(torch.rand(1, 1, 32, 64)).shape == (1, 3, 32, 64)


@pytest.mark.parametrize(("task", "schedule"), [("binary", "onecycle"), ("multiclass", "cosine")])
def test_fit_logs_only_declared_metrics(task, schedule):
    torch.manual_seed(0)
    batches = [collate([one_track_sample(task, seed=i)]) for i in range(2)]
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    model = Segmenter(task, base_channels=4, depth=2, lr_schedule=schedule, max_epochs=1)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, loader, loader)
    logged = set(trainer.callback_metrics)
    assert logged <= set(METRICS)
    assert {"train_loss", "val_loss", "val_dice_fg", "val_f1_tol2", "val_curve_mae"} <= logged
    assert all(torch.isfinite(v) for v in trainer.callback_metrics.values())
    assert int(model.val_metrics.n_curves) == 0  # reset after the epoch
