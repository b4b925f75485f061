"""A real (small) fit for both tasks: rendered rasters, the collate, checkpoints and logger on."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from datamodules.welllog import WellLogDataModule
from models.metric_names import METRICS
from models.segmenter import Segmenter


@pytest.mark.parametrize(("task", "batch_size"), [("binary", 1), ("multiclass", 4)])
def test_two_epoch_fit_logs_every_metric_and_writes_a_loadable_checkpoint(task, batch_size, tmp_path):
    L.seed_everything(0, verbose=False)
    dm = WellLogDataModule(task, 10 * batch_size, batch_size, scale=0.06, seed=1)  # >= 4 batches an epoch
    model = Segmenter(task, base_channels=4, depth=2, lr=3e-3)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, save_last=True)  # every epoch
    trainer = L.Trainer(
        max_epochs=2,
        limit_train_batches=4,
        limit_val_batches=2,
        accelerator="cpu",
        logger=CSVLogger(tmp_path, name="logs"),
        callbacks=[ckpt],
        enable_progress_bar=False,
        use_distributed_sampler=False,
    )
    trainer.fit(model, datamodule=dm)
    assert trainer.current_epoch == 2
    assert trainer.global_step == 8
    logged = set(trainer.callback_metrics)
    assert {"train_loss", "val_loss", "val_dice_fg", "val_iou_fg", "val_f1_tol2", "val_curve_mae"} <= logged
    assert logged <= set(METRICS)
    for name in logged:
        assert torch.isfinite(trainer.callback_metrics[name]), name
    assert (tmp_path / "logs" / "version_0" / "metrics.csv").is_file()
    assert len(list((tmp_path / "ckpt").glob("epoch=*.ckpt"))) == 2
    state = torch.load(ckpt.last_model_path, weights_only=True)
    assert state["epoch"] == 1
    assert state["global_step"] == 8
    restored = Segmenter.load_from_checkpoint(ckpt.last_model_path, weights_only=True)
    assert restored.hparams.task == task
