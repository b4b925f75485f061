"""The preview CLI writes a valid PNG of raster + coloured label; bad input exits 2."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datamodules import preview
from datamodules.synth import render


def _decode(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        return np.asarray(im)


def test_preview_writes_png_with_overlay(tmp_path):
    out = tmp_path / "p.png"
    assert preview.main(["--task", "multiclass", "--index", "2", "--out", str(out), "--scale", "0.0625"]) == 0
    s = render(2, seed=0, task="multiclass", scale=0.0625)
    rgb = _decode(out)
    h, w = s.image.shape
    assert rgb.shape == (2 * h, w, 3)
    assert (rgb[:h, :, 0] == s.image).all()
    lower = rgb[h:]
    assert (lower[s.label == 1] == preview.COLOURS[1]).all()
    assert (lower[s.label == 2] == preview.COLOURS[2]).all()


def test_preview_crop_and_every(tmp_path):
    out = tmp_path / "c.png"
    args = ["--task", "binary", "--index", "0", "--out", str(out), "--scale", "0.125", "--crop", "10:60"]
    assert preview.main([*args, "--every", "2"]) == 0
    h = render(0, seed=0, task="binary", scale=0.125).image.shape[0]
    assert _decode(out).shape == (2 * len(range(0, h, 2)), 25, 3)


@pytest.mark.parametrize(
    "bad",
    [
        ["--task", "instance", "--index", "0"],
        ["--task", "binary", "--index", "-1"],
        ["--task", "binary", "--index", "0", "--scale", "0"],
        ["--task", "binary", "--index", "0", "--crop", "5:2"],
        ["--task", "binary", "--index", "0", "--every", "0"],
    ],
)
def test_preview_bad_args_exit_2(tmp_path, bad, capsys):
    assert preview.main([*bad, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("preview: error: ") and err.count("\n") == 1  # one line, no usage dump
