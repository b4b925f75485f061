"""Compiled training over ragged rasters: a bounded number of graphs, plain checkpoint keys both ways."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import lightning as L
import pytest
import torch

from datamodules.collate import padded_size
from datamodules.welllog import WellLogDataModule
from models.compile_mode import Compile
from models.compiled import CompileWatch, compile_network, is_compiled
from models.segmenter import Segmenter
from models.unet import UNet


def test_compile_in_place_keeps_plain_keys_both_ways():
    eager, compiled = UNet(1, 3, 4, depth=2), UNet(1, 3, 4, depth=2)
    keys = list(eager.state_dict())
    assert compile_network(compiled) is compiled and is_compiled(compiled) and not is_compiled(eager)
    assert list(compiled.state_dict()) == keys  # no "_orig_mod." prefix
    compiled.load_state_dict(eager.state_dict())  # strict, eager -> compiled
    eager.load_state_dict(compiled.state_dict())  # and back


def test_compile_resolves_auto_on_off():
    assert Compile("on").resolve() and not Compile("off").resolve()
    assert Compile("auto").resolve() == torch.cuda.is_available()  # tests run on CPU: off
    with pytest.raises(ValueError, match="not a valid Compile"):
        Compile("yes").resolve()


def ticks() -> Callable[[], float]:
    """A clock that advances one second each time it is read: a watch on it counts the compiles it timed."""
    count = itertools.count()
    return lambda: float(next(count))


def test_watch_counts_graphs_and_times_each_compile_while_on():
    def double(x):
        return x * 2

    fn = torch.compile(double, backend="eager", dynamic=False)
    watch = CompileWatch(clock=ticks()).start()
    fn(torch.ones(3))
    assert watch.summary() == {"graphs_compiled": 1, "compile_seconds": 1.0}  # timed from its start to its end
    fn(torch.ones(3))  # same graph: nothing compiled, nothing timed
    assert watch.summary() == {"graphs_compiled": 1, "compile_seconds": 1.0}
    fn(torch.ones(3, dtype=torch.float64))  # a second graph
    watch.stop()
    fn(torch.ones(3, dtype=torch.int32))  # not counted: the watch is off
    assert watch.graphs == 2
    assert watch.summary() == {"graphs_compiled": 2, "compile_seconds": 2.0}
    assert watch.since_last() == watch.summary()  # per epoch: what was compiled since the last report
    assert watch.since_last() == {"graphs_compiled": 0, "compile_seconds": 0.0}


@pytest.mark.slow  # Inductor on CPU: two graphs, tens of seconds cold
def test_ragged_epoch_compiles_few_graphs_and_checkpoints_load_eager(tmp_path):
    torch.manual_seed(0)
    dm = WellLogDataModule("binary", 16, 1, scale=0.1, seed=0)
    sizes = dm.train_set.sizes() + dm.val_set.sizes()
    heights = {padded_size(h) for h, _ in sizes}
    widths = {padded_size(w) for _, w in sizes}
    model = Segmenter("binary", base_channels=4, depth=1, max_epochs=1)
    compile_network(model.net)
    watch = CompileWatch(clock=ticks())
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        callbacks=[watch],
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert len(widths) >= 8  # ragged: one graph per width would show
    assert is_compiled(model.net)
    assert 1 <= watch.graphs <= len(heights) + 2, (watch.summary(), heights)
    # Every graph's compile was timed: on the ticking clock, watch.seconds counts the compiles it timed (not wall
    # time; lazily compiled backwards add theirs).
    timed_compiles = watch.seconds
    assert timed_compiles >= watch.graphs, watch.summary()

    trainer.save_checkpoint(tmp_path / "compiled.ckpt")
    eager = Segmenter.load_from_checkpoint(tmp_path / "compiled.ckpt", weights_only=True)
    assert not is_compiled(eager.net)
    assert not any("_orig_mod" in k for k in eager.state_dict())
    batch = next(iter(dm.val_dataloader()))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(batch.images), eager(batch.images), rtol=1e-4, atol=1e-4)
    model.load_state_dict(eager.state_dict())  # eager -> compiled, strict
