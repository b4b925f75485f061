"""``python -m datamodules.export``: the layout with true curves and the rendering study's split, a progress bar,
and an interrupted export that goes on where it stopped, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datamodules.export import Export, export, main
from datamodules.layout import list_folder, read_image, split_sizes
from datamodules.synth import render

ARGS = ["--task", "binary", "--count", "5", "--scale", "0.05"]


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_layout_the_split_and_a_progress_line(tmp_path, capsys):
    assert main([*ARGS, "--out", str(tmp_path / "d")]) == 0
    out, err = capsys.readouterr()
    assert "wrote 5 rasters" in out and "python -m datamodules.check" in out
    assert "5/5 rasters" in err  # the progress bar (one line per tenth when stderr is not a terminal)
    listing = list_folder(tmp_path / "d")
    assert not listing.problems and [r.name for r in listing.rasters] == [f"binary_{i:06d}" for i in range(5)]
    n_train, _ = split_sizes(5, 0.2)
    assert [r.split for r in listing.rasters] == ["train"] * n_train + ["val"] * (5 - n_train)
    assert all(r.curves is not None for r in listing.rasters)
    assert np.array_equal(read_image(listing.rasters[2].image), render(2, seed=0, task="binary", scale=0.05).image)


def test_an_interrupted_export_goes_on_to_the_same_files(tmp_path, capsys):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main([*ARGS, "--out", str(whole)]) == 0
    assert main([*ARGS, "--out", str(cut)]) == 0
    (cut / "images" / "binary_000001.png").unlink()  # killed mid-way: one instance without its image,
    (cut / "curves" / "binary_000003.npz").unlink()  # one without its curves,
    (cut / "labels" / ".binary_000003.png.123.tmp").write_bytes(b"half")  # and a temporary file left behind
    capsys.readouterr()
    assert main([*ARGS, "--out", str(cut)]) == 0
    assert "wrote 2 rasters" in capsys.readouterr().out
    assert _files(cut) == _files(whole)


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--seed", "1"], "holds an export of binary, seed 0"), (["--format", "tif"], "format png")],
)
def test_going_on_with_other_flags_is_refused(tmp_path, capsys, flags, message):
    assert main([*ARGS, "--out", str(tmp_path / "d")]) == 0
    capsys.readouterr()
    assert main([*ARGS, "--out", str(tmp_path / "d"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_a_folder_that_holds_something_else_is_refused(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    assert main([*ARGS, "--out", str(tmp_path / "d")]) == 2
    assert "is not an export folder" in capsys.readouterr().err


def test_rescanned_images_are_jpeg_restyled_and_deterministic(tmp_path):
    a = export(Export("multiclass", 0, 0.05, "png", True, 3), tmp_path / "a", progress=False)
    export(Export("multiclass", 0, 0.05, "png", True, 3), tmp_path / "b", progress=False)
    assert a == (3, 0) and _files(tmp_path / "a") == _files(tmp_path / "b")
    image = tmp_path / "a" / "images" / "multiclass_000000.jpg"
    with Image.open(image) as im:
        assert im.format == "JPEG"
    plain = render(0, seed=0, task="multiclass", scale=0.05).image
    restyled = read_image(image)
    assert restyled.shape == plain.shape and np.median(restyled) < np.median(plain)  # greyer paper


def test_workers_write_what_one_process_writes(tmp_path):
    export(Export("binary", 0, 0.05, "tif", False, 4), tmp_path / "one", progress=False)
    export(Export("binary", 0, 0.05, "tif", False, 4), tmp_path / "two", workers=2, progress=False)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
