"""A small untrained segmenter saved the way a trial saves it, for tests of the tools that load checkpoints without
running a study (its predictions are noise; what is tested is the path around them)."""

from __future__ import annotations

from pathlib import Path

import torch

from models.segmenter import Segmenter


def untrained_checkpoint(path: Path, task: str, *, scale: float = 0.05, seed: int = 0) -> Path:
    """Write a Lightning-shaped checkpoint of a tiny untrained ``task`` segmenter (base 4, depth 2) to ``path``,
    with the data module's hyperparameters a trial records; returns ``path``."""
    torch.manual_seed(seed)
    model = Segmenter(task, base_channels=4, depth=2)
    data = {"task": task, "n_instances": 10, "batch_size": 1, "scale": scale, "seed": seed, "num_workers": 0}
    torch.save(
        {
            "hyper_parameters": dict(model.hparams),
            "state_dict": model.state_dict(),
            "datamodule_hyper_parameters": data,
        },
        path,
    )
    return path
