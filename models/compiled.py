"""torch.compile for the U-Net over ragged rasters, and the count and cost of what it compiled.

A trial compiles its network once, in place, before ``trainer.fit``::

    from models.compiled import CompileWatch, compile_network
    if Compile(flag).resolve():         # models.compile_mode: auto = on where this process sees a GPU
        compile_network(model.net)      # model: the Segmenter; its state_dict keys stay plain
    watch = CompileWatch()              # a Lightning callback: graphs compiled, seconds spent
    trainer = build_trainer(..., callbacks=[stats, watch, ...])
    ...  watch.summary() -> {"graphs_compiled": 2, "compile_seconds": 41.3}

Shapes are symbolic from the first graph on (``dynamic=True``): batch, height and width. Widths vary with
every batch and heights fall in the collate's /32 classes, so neither may be baked into a graph. What still
splits graphs are guards on size *ranges* that the compiler adds itself: a batch of 1 (0/1 specialisation),
inference vs training (validation runs without grad), and backend thresholds such as a conv's algorithm choice
by size. A ragged epoch therefore compiles a handful of graphs, not one per width (tests/models/test_compiled.py).

Two torch-version workarounds keep widths symbolic (both found on torch 2.13; harmless where not needed):

- Inductor's ``convolution_backward`` lowering (added for Triton conv-backward templates, torch >= 2.12)
  guards the grad-input strides to integers, which pins H and W to the first batch's values, so every new
  width recompiled until the recompile limit. It is replaced by the plain ATen fallback (the kernel it
  chose anyway unless max-autotune found a Triton template).
- On CPU, Inductor's layout optimisation forces channels-last for mkldnn convolutions even under dynamic
  shapes; AOTAutograd then re-strides the saved activations with concrete strides and specialises. The
  ``layout_optimization=False`` option turns that off (on CUDA Inductor already disables it for dynamic shapes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import lightning as L
import torch
from torch import nn

log = logging.getLogger(__name__)

COMPILE_OPTIONS = {"layout_optimization": False}


def compile_network(net: nn.Module) -> nn.Module:
    """Compile ``net`` in place for ragged inputs; returns it.

    ``nn.Module.compile`` keeps the module and its parameter names (no ``_orig_mod.`` prefix), so
    checkpoints load into an eager network and back. The first forward at a new graph class compiles; under
    Lightning's ``bf16-mixed`` the autocast state is part of what a graph is traced with (training and
    validation both run under it). ``fullgraph=True``: a graph break is an error, not a silent slowdown.
    """
    _keep_conv_backward_dynamic()
    net.compile(dynamic=True, fullgraph=True, options=COMPILE_OPTIONS)
    return net


def is_compiled(net: nn.Module) -> bool:
    return getattr(net, "_compiled_call_impl", None) is not None


def _keep_conv_backward_dynamic() -> None:
    """Replace Inductor's size-specialising ``convolution_backward`` lowering with the ATen fallback.

    Idempotent; a no-op on a torch without that lowering. Global to the process, like Inductor's lowerings.
    """
    from torch._inductor import lowering
    from torch._inductor.kernel import conv  # registers the lowering being replaced

    op = torch.ops.aten.convolution_backward.default
    current = lowering.lowerings.get(op)
    if current is None or getattr(current, "_is_fallback_handler", False):
        return
    if getattr(conv, "convolution_backward_lowering", None) is None:
        return
    # fallback_handler is an unannotated function of torch's (torch._inductor.lowering); it returns the handler.
    handler = lowering.fallback_handler(op, add_to_fallback_set=False)  # type: ignore[no-untyped-call]
    lowering.register_lowering(op, type_promotion_kind=None)(handler)
    log.debug("inductor: aten.convolution_backward lowered as the ATen fallback (keeps H and W symbolic)")


class CompileWatch(L.Callback):
    """Graphs compiled and wall seconds spent compiling in this process while the watch is on.

    Reads torch's own bookkeeping: ``torch._dynamo.utils.counters["stats"]["unique_graphs"]`` (one per
    graph handed to the backend) and dynamo's compile start/end callbacks, which bracket tracing, AOTAutograd
    and Inductor for a new frame and for a lazily compiled backward. As a Lightning callback it is on from
    ``setup`` to ``teardown``; outside Lightning use ``start()`` and ``stop()``. Figures are cumulative.

    Args:
        clock: the seconds each compile is timed by, read at its start and its end (``time.perf_counter``).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._graphs_at_start: int | None = None
        self._graphs_at_stop: int | None = None
        self._began: float | None = None
        self.seconds = 0.0
        self._reported = {"graphs_compiled": 0, "compile_seconds": 0.0}

    @staticmethod
    def _unique_graphs() -> int:
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])

    def _on_start(self, *_args: object) -> None:  # torch >= 2.7 passes CallbackArgs, older versions nothing
        self._began = self._clock()

    def _on_end(self, *_args: object) -> None:
        if self._began is not None:
            self.seconds += self._clock() - self._began
            self._began = None

    def start(self) -> CompileWatch:
        from torch._dynamo.callback import callback_handler

        if self._graphs_at_start is None or self._graphs_at_stop is not None:
            self._graphs_at_start = self._unique_graphs() - self.graphs
            self._graphs_at_stop = None
            callback_handler.register_start_callback(self._on_start)
            callback_handler.register_end_callback(self._on_end)
        return self

    def stop(self) -> None:
        from torch._dynamo.callback import callback_handler

        if self._graphs_at_start is not None and self._graphs_at_stop is None:
            self._graphs_at_stop = self._unique_graphs()
            callback_handler.remove_start_callback(self._on_start)
            callback_handler.remove_end_callback(self._on_end)

    @property
    def graphs(self) -> int:
        if self._graphs_at_start is None:
            return 0
        end = self._graphs_at_stop if self._graphs_at_stop is not None else self._unique_graphs()
        return end - self._graphs_at_start

    def summary(self) -> dict[str, float]:
        """The trials-table figures: ``graphs_compiled`` and ``compile_seconds`` so far."""
        return {"graphs_compiled": self.graphs, "compile_seconds": self.seconds}

    def since_last(self) -> dict[str, float]:
        """What was compiled since the previous call (the first call: since the watch started); per epoch."""
        now = self.summary()
        before, self._reported = self._reported, now
        return {k: now[k] - before[k] for k in now}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.start()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.stop()
