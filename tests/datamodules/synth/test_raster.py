"""The sparse stroke rasteriser and the text masks."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.synth import render_drawn
from datamodules.synth.fonts import text_mask
from datamodules.synth.raster import Frame, Pen, resample_path, stroke


def _step(h: int = 80, w: int = 60, jump: int = 30) -> np.ndarray:
    """A curve at row 20 that jumps to row 20 + 40 at column ``jump``: a near-vertical bed edge."""
    y = np.full(w, 20.0)
    y[jump:] = 60.0
    return y


def _ink(y: np.ndarray, pen: Pen | None, h: int = 80) -> np.ndarray:
    w = y.size
    path = resample_path(y, np.zeros(w, np.int64), Frame(h, w, h, w))
    st = stroke(path, 0.5, 0.5, pen, h, w)
    img = np.zeros((h, w), bool)
    keep = (st.coverage >= 0.5) & st.down
    img[st.rows[keep], st.cols[keep]] = True
    return img


def test_solid_stroke_covers_the_steep_edge_continuously():
    img = _ink(_step(), None)
    edge = img[22:58, 29:31].any(axis=1)  # the rows the edge sweeps, in its two columns
    assert edge.all()


def test_dots_follow_arc_length_so_a_steep_edge_stays_dotted():
    """Period 5, duty 0.4: along the 40 px edge there must be ~8 dots, not one solid bar."""
    img = _ink(_step(), Pen(5.0, 0.4, 0.0))
    edge = img[24:56, 29:31].any(axis=1)  # (rows,) inked rows along the edge
    runs = np.count_nonzero(np.diff(edge.astype(int)) == 1)
    assert 4 <= runs <= 10
    assert 0.25 < edge.mean() < 0.6
    flat = img[18:23, 2:27].any(axis=0)  # and along the flat part, dots along the columns
    assert 0.25 < flat.mean() < 0.6


def test_pen_up_and_pieces_break_the_stroke():
    y = np.full(40, 10.0)
    y[15:20] = np.nan
    seg = np.zeros(40, np.int64)
    seg[20:] = 1
    y[20:] = 30.0  # a new piece (wrap jump): no line joins it to the old one
    path = resample_path(y, seg, Frame(40, 40, 40, 40))
    st = stroke(path, 0.5, 0.5, None, 40, 40)
    assert not np.isin(st.cols, np.arange(15, 20)).any()
    assert st.rows[st.cols == 20].min() >= 28  # column 20 does not reach back up to row 10


def test_downscaled_path_keeps_narrow_spikes():
    """A 2-column spike survives a 4x reduction: the output column's run sweeps it."""
    y = np.full(400, 50.0)
    y[201:203] = 90.0
    path = resample_path(y, np.zeros(400, np.int64), Frame(25, 100, 100, 400))
    assert np.nanmax(path.hi) > 0.25 * 90 - 1


def test_text_masks_are_pillow_glyphs_cached_and_rotated():
    a = text_mask("GR 0 150", 12.0, False)
    assert a is text_mask("GR 0 150", 12.0, False)  # cached
    assert a.dtype == np.float32 and a.max() == pytest.approx(1.0, abs=0.05) and 0 < a.mean() < 0.6
    assert ((a > 0.05) & (a < 0.95)).any()  # anti-aliased outlines, not a bitmap font
    r = text_mask("GR 0 150", 12.0, True)
    np.testing.assert_array_equal(r, np.rot90(a))  # reads bottom to top
    small = text_mask("10450", 3.0, False)  # tiny text is an area-averaged smudge of the same glyphs
    assert small.shape[1] < text_mask("10450", 12.0, False).shape[1] and small.max() > 0.2


def test_dotted_curves_in_renders_stay_dotted_on_steep_edges():
    """In rendered logs, a dotted or dashed curve's long vertical runs contain gaps."""
    checked = 0
    for i in range(12):
        d = render_drawn(i, seed=31, task="multiclass", scale=0.5)
        s = d.sample
        for k, c in enumerate(s.curves):
            if c.style not in ("dot", "short"):
                continue
            p = d.paths[k]
            steep = np.flatnonzero(np.isfinite(p.yc) & (p.hi - p.lo > 16))
            for col in steep[:20]:
                rows = np.arange(int(np.ceil(p.lo[col])) + 2, int(p.hi[col]) - 1)
                lab = s.label[rows, col] == s.curve_classes[k]
                if (s.label[rows, col] == 255).any():
                    continue
                assert lab.any() and not lab.all(), (i, c.style, col)
                checked += 1
    assert checked >= 3
