"""The on-disk layout: the split, the windows of long rasters, the sizes refused, and how scans are made grey."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from datamodules.layout import (
    MAX_HEIGHT,
    MAX_WIDTH,
    WINDOW_OVERLAP,
    LayoutError,
    hash_split,
    image_header,
    list_folder,
    parse_fractions,
    read_image,
    read_label,
    size_problem,
    split_sizes,
    windows,
)
from datamodules.synth.generate import FULL_H, FULL_W
from tests.helpers.datasets import hand_folder


def test_the_limits_are_the_generators_full_scale_maximum():
    assert (FULL_H[1], FULL_W[1]) == (MAX_HEIGHT, MAX_WIDTH)


def test_the_hash_split_is_a_function_of_the_name_with_the_given_shares():
    names = [f"well_{i}" for i in range(4000)]
    splits = [hash_split(n, (0.7, 0.2, 0.1)) for n in names]
    assert splits == [hash_split(n, (0.7, 0.2, 0.1)) for n in names]
    shares = {s: splits.count(s) / len(names) for s in ("train", "val", "test")}
    assert shares["train"] == pytest.approx(0.7, abs=0.03)
    assert shares["val"] == pytest.approx(0.2, abs=0.03)
    assert shares["test"] == pytest.approx(0.1, abs=0.03)


@pytest.mark.parametrize("text", ["0.8,0.2", "0.5,0.2,0.2", "1,0,0", "a,b,c", "0.9,0.2,-0.1"])
def test_bad_split_shares_are_refused(text):
    with pytest.raises(ValueError, match=r"TRAIN,VAL,TEST|sum to 1"):
        parse_fractions(text)


def test_split_sizes_are_the_synthetic_data_modules():
    assert split_sizes(10, 0.2) == (8, 2)
    assert split_sizes(2, 0.2) == (1, 1)
    assert split_sizes(3, 0.9) == (1, 2)


@pytest.mark.parametrize("width", [MAX_WIDTH - 1, MAX_WIDTH, MAX_WIDTH + 1, 25_000, 40_000, 100_001])
def test_windows_cover_a_long_raster_with_overlap(width):
    ws = windows(width)
    assert ws[0][0] == 0 and ws[-1][1] == width
    for x0, x1 in ws:
        assert x1 - x0 == min(width, MAX_WIDTH)
    for (a0, a1), (b0, _) in itertools.pairwise(ws):
        assert a0 < b0 and a1 - b0 >= WINDOW_OVERLAP  # neighbours share at least the overlap
    assert (len(ws) == 1) == (width <= MAX_WIDTH)


def test_sizes_outside_the_limits_name_the_fix():
    assert size_problem(640, 40_000) is None  # long: windowed, not refused
    assert "rotate" in size_problem(40_000, 600)  # portrait: depth runs down the page
    assert "scale image and label down" in size_problem(700, 9_000)
    assert "smaller than" in size_problem(5, 100)


def _save(path, im: Image.Image, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kw)


def test_an_rgba_scan_is_composited_over_paper_and_made_grey(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 0  # black ink
    rgba[:2, :, 3] = 255  # opaque top half, transparent bottom half
    _save(tmp_path / "a.png", Image.fromarray(rgba, "RGBA"))
    grey = read_image(tmp_path / "a.png")
    assert grey.dtype == np.uint8 and grey.shape == (4, 4)
    assert (grey[:2] == 0).all() and (grey[2:] == 255).all()


def test_a_16_bit_tiff_scan_is_stretched_onto_8_bits(tmp_path):
    deep = np.array([[1000, 3000], [5000, 1000]], np.uint16)
    im = Image.fromarray(deep)
    assert im.mode == "I;16"
    _save(tmp_path / "a.tif", im)
    assert image_header(tmp_path / "a.tif")[:2] == (2, 2)
    assert read_image(tmp_path / "a.tif").tolist() == [[0, 128], [255, 0]]


def test_an_rgb_scan_is_made_grey_by_luma(tmp_path):
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 0], rgb[0, 1], rgb[0, 2] = (255, 0, 0), (0, 255, 0), (255, 255, 255)
    _save(tmp_path / "a.jpg", Image.fromarray(rgb, "RGB"), quality=100, subsampling=0)
    _save(tmp_path / "b.png", Image.fromarray(rgb, "RGB"))
    grey = read_image(tmp_path / "b.png")
    assert grey.tolist() == [[76, 150, 255]]
    assert np.abs(read_image(tmp_path / "a.jpg").astype(int) - grey).max() <= 8


def test_a_palette_label_reads_as_its_indices_and_an_rgb_label_is_refused(tmp_path):
    label = Image.fromarray(np.array([[0, 1, 2, 255]], np.uint8), "L").convert("P")
    label.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [255, 255, 0] * 253)
    _save(tmp_path / "p.png", label)
    assert read_label(tmp_path / "p.png").tolist() == [[0, 1, 2, 255]]
    _save(tmp_path / "rgb.png", Image.fromarray(np.zeros((2, 2, 3), np.uint8), "RGB"))
    with pytest.raises(LayoutError, match="8-bit single-channel PNG"):
        read_label(tmp_path / "rgb.png")


def test_the_listing_takes_split_csv_and_names_its_bad_lines(tmp_path):
    root = hand_folder(tmp_path / "d", n=3)
    listing = list_folder(root)
    assert [r.name for r in listing.rasters] == ["scan_0", "scan_1", "scan_2"]
    assert [r.split for r in listing.rasters] == ["val", "train", "train"]
    assert listing.split_source == "split.csv" and not listing.problems
    (root / "split.csv").write_text("name,split\nscan_0,val\nscan_1,holdout\nghost,train\n")
    problems = list_folder(root).problems
    assert any("split.csv:3" in p and "holdout" in p for p in problems)
    assert any("split.csv:4" in p and "'ghost' has no image" in p for p in problems)
    assert any("'scan_2' of images/ has no line" in p for p in problems)


def test_without_split_csv_the_hash_split_applies(tmp_path):
    root = hand_folder(tmp_path / "d", n=3)
    (root / "split.csv").unlink()
    listing = list_folder(root, (0.5, 0.5, 0.0))
    assert listing.split_source == "hash split 0.5/0.5/0"
    assert [r.split for r in listing.rasters] == [hash_split(r.name, (0.5, 0.5, 0.0)) for r in listing.rasters]
