"""Resume parity: a fit interrupted after epoch k and resumed from the trial's checkpoint ends where an
uninterrupted fit ends (weights, AdamW state, LR schedule, loop counters), with no epoch redone.

The checkpoint is the one the trial writes: ``trainer.save_checkpoint`` inside ``on_train_epoch_end`` (after
validation, before Lightning steps epoch-interval schedulers and marks the epoch completed), and the resume is
the trial's ``trainer.fit(..., ckpt_path=..., weights_only=True)`` on a fresh Trainer, model and datamodule.
The interruption is an exception raised right after that save, with the trial's ``max_epochs`` unchanged
(a shorter ``max_epochs`` would change OneCycleLR's total steps and the cosine horizon, which a real
interruption does not).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from datamodules.collate import collate
from datamodules.welllog import WellLogDataModule
from models.segmenter import Segmenter
from study.trainer import build_trainer

EPOCHS = 4
STOP_AFTER = 2  # k: the interrupted run saves epoch k, then dies
SEED = 7
TOL = 1e-6


class Interrupted(RuntimeError):
    """Stands in for a killed trial, raised after the epoch's checkpoint is on disk."""


class SaveEveryEpoch(Callback):
    """The trial's checkpointing (TuneReport): a full Lightning checkpoint in on_train_epoch_end."""

    def __init__(self, directory: Path, stop_after: int | None = None) -> None:
        self.directory = directory
        self.stop_after = stop_after

    def path(self, epoch: int) -> Path:
        return self.directory / f"epoch{epoch}.ckpt"

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        trainer.save_checkpoint(self.path(epoch))
        if epoch == self.stop_after:
            raise Interrupted(f"interrupted after epoch {epoch}")


class EpochsSeen(Callback):
    """1-based numbers of the epochs that trained at least one batch, and each epoch's batches (fingerprints)."""

    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.batches: dict[int, list[tuple[int, ...]]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        epoch = trainer.current_epoch + 1
        if not self.epochs or self.epochs[-1] != epoch:
            self.epochs.append(epoch)
        # (B, 1, H, W) and the ink sum identify the rasters of a batch
        self.batches.setdefault(epoch, []).append((*batch.images.shape, round(float(batch.images.sum()))))


class UnsavedShuffleDataModule(WellLogDataModule):
    """Negative control: training order from a generator seeded once at construction, never checkpointed."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.generator = torch.Generator().manual_seed(SEED)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set,
            batch_size=self.hparams.batch_size,
            shuffle=True,
            generator=self.generator,
            collate_fn=collate,
        )


def _datamodule(kind: type[WellLogDataModule]) -> WellLogDataModule:
    return kind("binary", 10, 1, scale=0.05, seed=3)  # 8 train rasters of about 160-640 x 24-32 px


def _fit(
    root: Path,
    schedule: str,
    kind: type[WellLogDataModule],
    *,
    stop_after: int | None = None,
    ckpt_path: Path | None = None,
) -> tuple[L.Trainer, Segmenter, EpochsSeen, SaveEveryEpoch]:
    L.seed_everything(SEED, workers=True, verbose=False)
    datamodule = _datamodule(kind)
    model = Segmenter("binary", base_channels=4, depth=2, lr=3e-3, lr_schedule=schedule, max_epochs=EPOCHS)
    seen, saver = EpochsSeen(), SaveEveryEpoch(root / "ckpt", stop_after)
    trainer = build_trainer(
        epochs=EPOCHS,
        root_dir=root,
        callbacks=[seen, saver],
        accelerator="cpu",
        deterministic=True,
        limit_train_batches=3,
        limit_val_batches=1,
    )
    if stop_after is not None:
        with pytest.raises(Interrupted):
            trainer.fit(model, datamodule=datamodule)
    elif ckpt_path is not None:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    else:
        trainer.fit(model, datamodule=datamodule)
    return trainer, model, seen, saver


def _diffs(a, b, where: str, out: dict[str, float]) -> None:
    """Max abs diff of every tensor leaf into ``out``; non-tensor leaves must be equal (else KeyError/Assert)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.shape == b.shape, f"{where}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
        if a.dtype in (torch.int32, torch.int64) or (a.ndim == 0 and where.endswith(".step")):
            out[where] = 0.0 if torch.equal(a, b) else float("inf")  # step counts: exactly equal
        else:
            out[where] = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
    elif isinstance(a, dict):
        assert isinstance(b, dict), where
        assert sorted(a, key=str) == sorted(b, key=str), f"{where}: keys {sorted(a, key=str)} vs {sorted(b, key=str)}"
        for key in a:
            _diffs(a[key], b[key], f"{where}.{key}", out)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _diffs(x, y, f"{where}[{i}]", out)
    elif isinstance(a, float):
        out[where] = abs(a - b)
    else:
        out[where] = 0.0 if a == b else float("inf")


def end_state_diffs(left: tuple[L.Trainer, Segmenter], right: tuple[L.Trainer, Segmenter]) -> dict[str, float]:
    """Every difference between two finished fits: weights, optimizer, schedulers, loop counters."""
    (ta, ma), (tb, mb) = left, right
    out: dict[str, float] = {}
    _diffs(ma.state_dict(), mb.state_dict(), "weights", out)
    assert len(ta.optimizers) == len(tb.optimizers) == 1
    _diffs(ta.optimizers[0].state_dict(), tb.optimizers[0].state_dict(), "optimizer", out)
    sched_a = [c.scheduler.state_dict() for c in ta.lr_scheduler_configs]
    sched_b = [c.scheduler.state_dict() for c in tb.lr_scheduler_configs]
    _diffs(sched_a, sched_b, "scheduler", out)
    out["global_step"] = float(abs(ta.global_step - tb.global_step))
    out["current_epoch"] = float(abs(ta.current_epoch - tb.current_epoch))
    return out


def _uninterrupted_vs_resumed(
    tmp_path: Path, schedule: str, kind: type[WellLogDataModule]
) -> tuple[dict[str, float], list[int]]:
    """End-state diffs of uninterrupted vs interrupted-and-resumed, and the resumed epochs whose batches differ."""
    full, full_model, full_seen, _ = _fit(tmp_path / "full", schedule, kind)
    assert full_seen.epochs == list(range(1, EPOCHS + 1))
    assert full.global_step == 3 * EPOCHS
    _, _, first_seen, saver = _fit(tmp_path / "cut", schedule, kind, stop_after=STOP_AFTER)
    assert first_seen.epochs == list(range(1, STOP_AFTER + 1))
    assert not saver.path(STOP_AFTER + 1).exists()
    resumed, resumed_model, seen, _ = _fit(tmp_path / "resumed", schedule, kind, ckpt_path=saver.path(STOP_AFTER))
    assert seen.epochs == list(range(STOP_AFTER + 1, EPOCHS + 1)), f"epochs trained after resume: {seen.epochs}"
    other_batches = [e for e in seen.epochs if seen.batches[e] != full_seen.batches[e]]
    return end_state_diffs((full, full_model), (resumed, resumed_model)), other_batches


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_resumed_fit_ends_where_uninterrupted_fit_ends(tmp_path, schedule):
    diffs, other_batches = _uninterrupted_vs_resumed(tmp_path, schedule, WellLogDataModule)
    worst = max(diffs, key=diffs.get)
    print(
        f"\n{schedule}: {len(diffs)} compared leaves, worst {worst} = {diffs[worst]:.3g}, other batches {other_batches}"
    )
    assert not other_batches, f"resumed epochs {other_batches} trained on other batches than the uninterrupted fit"
    assert any(k.startswith("scheduler") for k in diffs), "no LR scheduler state compared"
    bad = {k: v for k, v in diffs.items() if not v <= TOL}
    assert not bad, f"resume diverged from the uninterrupted fit: {dict(sorted(bad.items())[:10])}"


@pytest.mark.slow
def test_unsaved_shuffle_rng_breaks_parity(tmp_path):
    """The same check catches a data order that a checkpoint cannot restore."""
    diffs, _ = _uninterrupted_vs_resumed(tmp_path, "onecycle", UnsavedShuffleDataModule)
    weights = max(v for k, v in diffs.items() if k.startswith("weights"))
    print(f"\nunsaved shuffle RNG: max weight diff {weights:.3g}")
    assert weights > 1e-4
