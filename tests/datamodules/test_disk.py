"""A dataset on disk through the data module: an exported set gives the rendering study's rasters, batches and
metrics exactly; --instances caps it; long rasters become windows; a second validation set is a second loader."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from datamodules.datasets import DiskDataset
from datamodules.layout import MAX_WIDTH, cut, list_folder, windows
from datamodules.welllog import WellLogDataModule
from models.metrics import SegmentationMetrics
from models.segmenter import Segmenter
from tests.helpers.datasets import TINY_SCALE, curve_label, exported, write_pair

N = 10


@pytest.fixture(scope="module", params=["binary", "multiclass"])
def pair(request, tmp_path_factory):
    """(task, the rendering data module, the same instances exported and read from disk)."""
    task = request.param
    folder = exported(tmp_path_factory.mktemp(task) / "set", task, N, seed=3)
    rendered = WellLogDataModule(task, N, 3, scale=TINY_SCALE, seed=3)
    on_disk = WellLogDataModule(task, N, 3, seed=3, data=str(folder))
    return task, rendered, on_disk


def _same_batch(a, b) -> None:
    for name in ("images", "labels", "sizes", "curve_classes", "curve_scored", "curve_laps"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name in ("curve_rows", "curve_tracks"):
        assert torch.equal(getattr(a, name).nan_to_num(-7), getattr(b, name).nan_to_num(-7)), name


def test_an_exported_set_reads_back_as_the_rendered_rasters(pair):
    _, rendered, on_disk = pair
    assert len(on_disk.train_set) == len(rendered.train_set) == 8 and len(on_disk.val_set) == 2
    assert on_disk.train_set.sizes() == rendered.train_set.sizes()
    for mine, theirs in ((on_disk.train_set, rendered.train_set), (on_disk.val_set, rendered.val_set)):
        for i in range(len(mine)):
            a, b = mine[i], theirs[i]
            assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
            assert np.array_equal(a.curve_rows, b.curve_rows, equal_nan=True)
            assert np.array_equal(a.curve_scored, b.curve_scored) and a.curves == b.curves


def test_the_same_batches_and_the_same_metrics(pair):
    task, rendered, on_disk = pair
    for dm in (rendered, on_disk):
        dm.load_state_dict({"next_epoch": 1})
    for a, b in zip(rendered.train_dataloader(), on_disk.train_dataloader(), strict=True):
        _same_batch(a, b)
    scores = []
    for dm in (rendered, on_disk):
        metric = SegmentationMetrics(task)
        gen = torch.Generator().manual_seed(0)
        for batch in dm.val_dataloader():
            c = 1 if task == "binary" else 3
            metric.update(torch.randn(len(batch), c, *batch.labels.shape[1:], generator=gen), batch)
        scores.append({k: float(v) for k, v in metric.compute().items()})
    assert scores[0] == scores[1]


def _fit(task: str, dm: WellLogDataModule, tmp_path) -> dict[str, float]:
    L.seed_everything(0, verbose=False)
    model = Segmenter(task, base_channels=4, depth=2)
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_a_fit_on_the_exported_set_logs_the_rendering_fits_metrics(pair, tmp_path):
    task, rendered, on_disk = pair
    a, b = _fit(task, rendered, tmp_path), _fit(task, on_disk, tmp_path)
    assert a.keys() == b.keys() and "val_dice_fg" in a
    for name in a:
        assert b[name] == pytest.approx(a[name], rel=1e-6, abs=1e-7), name


def test_a_second_validation_set_is_a_second_loader_and_logs_val2(pair, tmp_path):
    task, _, on_disk = pair
    folder = on_disk.hparams["data"]
    dm = WellLogDataModule(task, N, 3, scale=TINY_SCALE, seed=3, val_data=folder)
    loaders = dm.val_dataloader()
    assert isinstance(loaders, list) and len(loaders) == 2
    assert len(dm.val2_set) == N  # a folder validated on a second time: every raster but the test split
    logged = _fit(task, dm, tmp_path)
    firsts = sorted(k for k in logged if k.startswith("val_"))
    assert sorted(k for k in logged if k.startswith("val2_")) == sorted("val2_" + k[4:] for k in firsts)


def test_instances_caps_the_rasters_by_name(tmp_path):
    folder = exported(tmp_path / "set", "binary", N)
    (folder / "split.csv").write_text("".join(f"binary_{i:06d},{'val' if i % 3 == 0 else 'train'}\n" for i in range(N)))
    dm = WellLogDataModule("binary", 5, 1, data=str(folder))
    assert [dm.train_set.name(i) for i in range(len(dm.train_set))] == [f"binary_{i:06d}" for i in (1, 2, 4)]
    assert [dm.val_set.name(i) for i in range(len(dm.val_set))] == ["binary_000000", "binary_000003"]


def test_a_raster_longer_than_the_collate_takes_is_read_as_windows(tmp_path):
    w = 40_000
    label = curve_label(16, w, rows=(7,))
    write_pair(tmp_path, "long", np.where(label > 0, 0, 255), label)
    ds = DiskDataset("binary", cut(list_folder(tmp_path).rasters))
    assert len(ds) == len(windows(w)) == 4
    assert ds.sizes() == [(16, MAX_WIDTH)] * 4
    assert ds.name(1).startswith("long (columns ")
    for i, (x0, x1) in enumerate(windows(w)):
        s = ds[i]
        assert s.image.shape == (16, x1 - x0) and np.array_equal(s.label, label[:, x0:x1])
        assert np.nanmax(s.curve_rows) == 7.5  # the truth traced from the window's label
