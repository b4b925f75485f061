"""Labels and the curve side channel agree with what the image shows (docs/generator.md, 'Labels')."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.labels import IGNORE_INDEX
from datamodules.synth import render, render_drawn
from datamodules.synth.generate import Drawn

SCALE = 0.25


@pytest.fixture(scope="module")
def drawn() -> list[tuple[str, Drawn]]:
    return [
        (task, render_drawn(i, seed=21, task=task, scale=SCALE)) for task in ("binary", "multiclass") for i in range(8)
    ]


def test_scored_columns_have_their_class_next_to_the_centreline(drawn):
    """A perfect prediction covers every scored column: a pixel of the curve's class within half a pixel of the
    true centreline (the true point itself is inked)."""
    checked = 0
    for _, d in drawn:
        s = d.sample
        for k, hw in enumerate(d.half_widths):
            cols = np.flatnonzero(s.curve_scored[k])
            y = s.curve_rows[k, cols]
            offs = np.arange(-int(hw) - 3, int(hw) + 4)
            rows = np.rint(y)[:, None] + offs[None, :]  # (n, m)
            near = (np.abs(rows - y[:, None]) <= 0.5 + 1e-6) & (rows >= 0) & (rows < s.label.shape[0])
            lab = s.label[np.clip(rows, 0, s.label.shape[0] - 1).astype(int), cols[:, None]]
            assert ((lab == s.curve_classes[k]) & near).any(axis=1).all()
            checked += cols.size
    assert checked > 10_000


def test_scored_columns_keep_away_from_edges_and_jumps(drawn):
    """Scored columns are logged and on one lap for 3 columns either side (no pen-up edge, no wrap jump)."""
    for _, d in drawn:
        s = d.sample
        for k in range(len(s.curves)):
            fin = np.isfinite(s.curve_rows[k])
            for c in np.flatnonzero(s.curve_scored[k]):
                a, b = max(0, c - 2), min(s.image.shape[1], c + 3)
                assert fin[a:b].all()
                assert (s.curve_laps[k, a:b] == s.curve_laps[k, c]).all()
            assert not (s.curve_scored[k] & d.clipped[k]).any()


def test_dashed_curves_are_scored_only_where_inked(drawn):
    """Solid curves are scored in most logged columns; dashed and dotted ones leave their gaps out."""
    solid, broken = [], []
    for _, d in drawn:
        s = d.sample
        for k, c in enumerate(s.curves):
            logged = np.isfinite(s.curve_rows[k]) & ~d.clipped[k]
            if logged.sum() > 200:
                share = s.curve_scored[k][logged].mean()
                (solid if c.style in ("solid", "light") else broken).append(share)
    assert np.median(solid) > 0.8
    assert np.median(broken) < 0.85 * np.median(solid)


def test_labels_never_mark_a_border_a_curve_is_clipped_onto(drawn):
    """Where a curve runs along its track border (value off scale), the border line is not labelled as that
    curve; only another curve that is really there may claim those pixels."""
    checked = 0
    for _, d in drawn:
        s, lab = d.sample, d.sample.label
        h = lab.shape[0]
        for k, c in enumerate(s.curves):
            tr = d.borders[_track_of(d, k)]  # (2, w)
            cols = np.flatnonzero(d.clipped[k] & np.isfinite(s.curve_rows[k]))
            if cols.size == 0:
                continue
            y = s.curve_rows[k, cols]
            border = np.where(np.abs(tr[0, cols] - y) < np.abs(tr[1, cols] - y), tr[0, cols], tr[1, cols])
            for dr in (-1, 0, 1):
                r = np.clip(np.rint(border) + dr, 0, h - 1).astype(int)
                marked = lab[r, cols] == s.curve_classes[k]
                for j, hw in enumerate(d.half_widths):  # unless another, unclipped curve is there
                    if j != k and s.curve_classes[j] == s.curve_classes[k]:
                        yj = s.curve_rows[j, cols]
                        marked &= ~(np.isfinite(yj) & ~d.clipped[j, cols] & (np.abs(yj - r) <= hw + 2))
                assert not marked.any(), (c, cols[marked][:5])
            checked += cols.size
    assert checked > 100


def _track_of(d: Drawn, k: int) -> int:
    """The track whose top border (shifted by at most a few px of skew and wander) matches curve k's track."""
    top = d.sample.curve_tracks[k, 0]
    return int(np.argmin(np.abs(np.median(d.borders[:, 0], axis=1) - top)))


def test_labelled_curve_pixels_lie_on_their_curves(drawn):
    """No curve label farther than hw + softness + 2 rows from a curve of that class (its swept envelope)."""
    for task, d in drawn:
        s = d.sample
        for cls in (1, 2) if task == "multiclass" else (1,):
            pr, pc = np.nonzero(s.label == cls)
            inside = np.zeros(pr.size, bool)
            for k, path in enumerate(d.paths):
                if s.curve_classes[k] == cls:
                    reach = d.half_widths[k] + 2.5
                    inside |= (pr >= path.lo[pc] - reach) & (pr <= path.hi[pc] + reach)
            assert inside.all()


def test_binarised_rasters_have_no_invisible_labelled_ink():
    """Visibility: after binarisation every labelled curve pixel is black; the rest became IGNORE_INDEX."""
    found = 0
    for i in range(40):
        s = render(i, seed=4, task="multiclass", scale=0.1)
        if not set(np.unique(s.image).tolist()) <= {0, 255}:
            continue
        found += 1
        curve = np.isin(s.label, (1, 2))
        assert curve.any()
        assert (s.image[curve] == 0).all()
    assert found >= 3  # binarisation has p = 0.2


def test_grey_rasters_show_their_labelled_ink(drawn):
    """Labelled curve pixels are darker than the paper around them (by > 0.05 of full scale, the generator's eps),
    up to sensor noise and JPEG ringing on single pixels."""
    for _, d in drawn:
        s = d.sample
        curve = np.isin(s.label, (1, 2))
        if not curve.any():
            continue
        paper = np.percentile(s.image, 90, axis=0)  # (w,) local paper per column
        dark = paper[None, :].astype(np.float32) - s.image.astype(np.float32)  # (h, w)
        assert (dark[curve] > 0.05 * 255).mean() > 0.9


def test_class_balance(drawn):
    """Curve ink is rare but present: 0.2-1.5 % per curve at full scale (docs/generator.md, 'Strokes'); at scale
    0.25 strokes keep a 1 px minimum, so up to 5 curves may take 0.2-10 % of a raster, background the rest."""
    for task, d in drawn:
        lab = d.sample.label
        fg = np.isin(lab, (1, 2)).mean()
        assert 0.002 < fg < 0.10
        assert (lab == 0).mean() > 0.85
        if task == "multiclass":
            assert (lab == 1).mean() > 0.0005 and (lab == 2).mean() > 0.0005
        assert (lab == IGNORE_INDEX).mean() < 0.05


def test_multiclass_identity_is_visible(drawn):
    """Class 1 is solid and dark; class 2 is dashed or dotted (fewer inked columns) or lighter."""
    for task, d in drawn:
        if task != "multiclass":
            continue
        s = d.sample
        for k, c in enumerate(s.curves):
            if s.curve_classes[k] == 1:
                assert c.style == "solid" and d.looks[k].dark > 0.7
            else:
                assert c.style != "solid"
                assert c.style != "light" or d.looks[k].dark < 0.5
