"""Shared test set-up: CPU only, single-threaded torch, a private HOME per Ray test."""

from __future__ import annotations

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU is the default device in tests
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch

from datamodules.synth import CurveInfo, Sample

torch.set_num_threads(1)


def make_sample(h: int, w: int, *, seed: int = 0, n_curves: int = 2, task: str = "multiclass") -> Sample:
    """A hand-made sample: random ink, a 2 px curve per class at known rows, every column scored, on scale."""
    rng = np.random.default_rng(seed)
    image = np.full((h, w), 255, dtype=np.uint8)
    label = np.zeros((h, w), dtype=np.uint8)
    rows = np.full((n_curves, w), np.nan, dtype=np.float32)
    cols = np.arange(w)
    for k in range(n_curves):
        centre = (k + 1) * h / (n_curves + 1) + 2 * np.sin(cols / 7.0 + k)
        rows[k] = centre
        r = np.round(centre).astype(int)
        cls = 1 if task == "binary" else k + 1
        for dr in (0, 1):
            label[np.clip(r + dr, 0, h - 1), cols] = cls
            image[np.clip(r + dr, 0, h - 1), cols] = rng.integers(0, 60, size=w)
    classes = np.array([1 if task == "binary" else k + 1 for k in range(n_curves)], dtype=np.int64)
    tracks = np.tile(np.array([0.0, h - 1.0], dtype=np.float32), (n_curves, 1))
    return Sample(
        image=image,
        label=label,
        curve_rows=rows,
        curve_classes=classes,
        curve_tracks=tracks,
        curve_scored=np.ones((n_curves, w), dtype=bool),
        curve_laps=np.zeros((n_curves, w), dtype=np.int8),
        curves=tuple(
            CurveInfo("GR", "lin", 0.0, 150.0, "clip", -1, "solid" if c == 1 else "long") for c in classes.tolist()
        ),
    )


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """One real tiny study (both tasks, 2 trials x 2 epochs each, real Ray, Optuna and Lightning), shared by the
    report and predict tests. 15 rasters per task leave 3 for validation (the report shows 3). The first binary
    trial to reach epoch 2 fails there on every attempt (fault injection), so the study holds an errored trial
    beside finished ones. Returns the study directory."""
    from tests.study.helpers import TINY, study

    home = tmp_path_factory.mktemp("tiny-study")
    args = ["--storage", str(home / "runs"), "--name", "tiny", "--num-samples", "2", "--epochs", "2", *TINY]
    args += ["--instances", "15"]  # after TINY's: the last one counts
    faults = [{"action": "raise", "epoch": 2, "trials": "one", "times": 3}]
    proc = study(args, home, faults=faults)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # 1: a trial errored, as injected
    return home / "runs" / "tiny"
