"""Crafted checkpoints: the trial's resume path and Segmenter loading refuse a pickle that runs code."""

from __future__ import annotations

import os
import pickle
import shlex
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from datamodules.welllog import WellLogDataModule
from models.segmenter import Segmenter
from study.trainer import build_trainer

REPO = Path(__file__).resolve().parents[2]
PLAIN = (bool, int, float, str, type(None))


class Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


class SaveEveryEpoch(Callback):
    """The trial's checkpointing (TuneReport): a full Lightning checkpoint in on_train_epoch_end."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.save_checkpoint(self.path)


def _parts():
    L.seed_everything(0, verbose=False)
    datamodule = WellLogDataModule("multiclass", 4, 2, scale=0.05, seed=1)
    model = Segmenter(
        "multiclass",
        base_channels=4,
        depth=2,
        loss_params={"class_weighting": "inverse"},
        class_frequencies=(0.9, 0.06, 0.04),
        max_epochs=2,
    )
    return model, datamodule


def _trainer(root: Path, callbacks: list[Callback]) -> L.Trainer:
    return build_trainer(
        epochs=2, root_dir=root, callbacks=callbacks, accelerator="cpu", limit_train_batches=1, limit_val_batches=1
    )


@pytest.fixture(scope="module")
def genuine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("genuine")
    path = root / "checkpoint.ckpt"
    model, datamodule = _parts()
    _trainer(root, [SaveEveryEpoch(path)]).fit(model, datamodule=datamodule)
    return path


@pytest.fixture
def crafted(genuine, tmp_path) -> tuple[Path, Path]:
    """A real checkpoint with a payload among its hyperparameters; returns (checkpoint, marker)."""
    marker = tmp_path / "marker"
    state = torch.load(genuine, weights_only=True)
    state["hyper_parameters"]["loss"] = Payload(marker)
    path = tmp_path / "crafted.ckpt"
    torch.save(state, path)
    assert not marker.exists()
    return path, marker


def test_control_unsafe_load_runs_the_payload(crafted):
    path, marker = crafted
    code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)
    assert marker.exists(), "the crafted checkpoint is harmless: the tests below would prove nothing"


def test_trial_resume_path_refuses_crafted_checkpoint(crafted, tmp_path):
    path, marker = crafted
    model, datamodule = _parts()
    with pytest.raises(pickle.UnpicklingError, match=r"Weights only load failed"):
        _trainer(tmp_path, []).fit(model, datamodule=datamodule, ckpt_path=path, weights_only=True)
    assert not marker.exists()


def test_segmenter_load_refuses_crafted_checkpoint(crafted):
    path, marker = crafted
    with pytest.raises(pickle.UnpicklingError, match=r"Weights only load failed"):
        Segmenter.load_from_checkpoint(path, weights_only=True)
    assert not marker.exists()


def _plain(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return isinstance(value, PLAIN)


def test_genuine_checkpoint_loads_with_weights_only(genuine, tmp_path):
    state = torch.load(genuine, weights_only=True)
    assert state["epoch"] == 1 and state["global_step"] == 2
    assert _plain(dict(state["hyper_parameters"])), state["hyper_parameters"]
    assert _plain(dict(state["datamodule_hyper_parameters"])), state["datamodule_hyper_parameters"]
    restored = Segmenter.load_from_checkpoint(genuine, weights_only=True)
    assert tuple(restored.hparams.class_frequencies) == (0.9, 0.06, 0.04)
    assert restored.hparams.loss_params == {"class_weighting": "inverse"}
    model, datamodule = _parts()
    trainer = _trainer(tmp_path, [])
    trainer.fit_loop.max_epochs = 3  # one more epoch, resumed the trial's way
    trainer.fit(model, datamodule=datamodule, ckpt_path=genuine, weights_only=True)
    assert trainer.current_epoch == 3 and trainer.global_step == 3
