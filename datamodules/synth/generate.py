"""Build the scene of one instance (full scale, from its seed alone) and draw it at a scale.

Random streams (docs/generator.md, 'Determinism'): ``SeedSequence([seed, task_id, index])`` spawns a shape
stream (W, H only) and a content stream; the content stream spawns one child per stage, in the fixed order of
``_STAGES``, so a new stage never shifts the draws of an existing one. Every draw is in full-scale units and
no draw count depends on the render scale, except in the ``noise`` stage, which draws last.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from datamodules.labels import IGNORE_INDEX, check_task, task_spec
from datamodules.synth.degrade import CurveInk, Scan, draw_scan, finish
from datamodules.synth.grid import DepthScale, draw_grid
from datamodules.synth.lithology import make_formation
from datamodules.synth.marks import draw_marks, draw_shading
from datamodules.synth.raster import Frame, Path, Stroke, arc_lengths, resample_path, stroke
from datamodules.synth.sample import Sample
from datamodules.synth.scene import Geometry, Layout, Stacks, make_geometry, make_layout, place_stacks
from datamodules.synth.signals import Trace, choose_kinds, make_traces
from datamodules.synth.styles import Look, choose_looks
from datamodules.synth.text import draw_depth_numbers, draw_header, draw_stacks

GENERATOR_VERSION = 2
FULL_W = (3200, 12800)  # inclusive ranges at scale 1.0
FULL_H = (480, 640)
_STAGES = (
    "layout", "geometry", "scan", "suite", "formation", "signals", "stacks", "styles",
    "grid", "text", "shading", "curves", "marks", "photo", "noise",
)  # fmt: skip
EVENT_MARGIN = 3  # scored columns keep this far from wrap jumps, pen-up edges and splices


def _streams(index: int, seed: int, task: str) -> tuple[np.random.Generator, np.random.SeedSequence]:
    ss = np.random.SeedSequence([seed, task_spec(task).task_id, index])
    shape_ss, content_ss = ss.spawn(2)
    return np.random.default_rng(shape_ss), content_ss


def full_shape(index: int, *, seed: int, task: str) -> tuple[int, int]:
    """(H, W) of instance ``index`` at scale 1.0."""
    shape_rng, _ = _streams(index, seed, task)
    w = int(shape_rng.integers(FULL_W[0], FULL_W[1] + 1))
    h = int(shape_rng.integers(FULL_H[0], FULL_H[1] + 1))
    return h, w


def shape(index: int, *, seed: int, task: str, scale: float = 1.0) -> tuple[int, int]:
    """(H, W) of instance ``index`` at ``scale``, without rendering it."""
    h, w = full_shape(index, seed=seed, task=task)
    return max(1, round(h * scale)), max(1, round(w * scale))


@dataclass(frozen=True)
class Scene:
    """Everything about one instance that does not depend on the render scale (full-scale units)."""

    layout: Layout
    geometry: Geometry
    scan: Scan
    stacks: Stacks
    blank: npt.NDArray[np.bool_]  # (W,) bool, columns without curves or depth grid (header, stacks)
    traces: list[Trace]
    looks: list[Look]
    rngs: dict[str, np.random.Generator]  # the drawing stages' streams, consumed by ``draw``


def build_scene(index: int, *, seed: int, task: str, full_h: int, full_w: int) -> Scene:
    _, content = _streams(index, seed, check_task(task))
    rngs = dict(zip(_STAGES, (np.random.default_rng(c) for c in content.spawn(len(_STAGES))), strict=True))
    lay = make_layout(rngs["layout"], full_h, full_w)
    geo = make_geometry(rngs["geometry"], full_w)
    scan = draw_scan(rngs["scan"])
    kinds = choose_kinds(rngs["suite"], lay)
    per_track = [sum(1 for _, t in kinds if t == i) for i in range(len(lay.tracks))]
    stacks = place_stacks(rngs["stacks"], lay, [n + 1 for n in per_track])  # room for a backup trace
    blank = stacks.blank(full_w, lay.header_w)
    formation = make_formation(rngs["formation"], full_w)
    traces = make_traces(rngs["signals"], lay, geo, formation, kinds, blank)
    looks = choose_looks(
        rngs["styles"],
        [tr.track for tr in traces],
        [tr.info.backup_of for tr in traces],
        task,
        scan.binarise is not None,
    )
    return Scene(lay, geo, scan, stacks, blank, traces, looks, rngs)


@dataclass(frozen=True)
class Drawn:
    """A rendered sample with what tests and previews want to know about its strokes."""

    sample: Sample
    looks: list[Look]
    half_widths: list[float]  # output px
    paths: list[Path]
    borders: npt.NDArray[np.float32]  # (T, 2, w) float32: rows of each track's top and bottom border line per column
    clipped: npt.NDArray[np.bool_]  # (K, w) bool: columns where curve k runs along its track border (value off scale)
    scene: Scene  # what was drawn (full scale)
    frame: Frame  # where it was drawn
    depth: DepthScale  # the depth the page prints


def draw(scene: Scene, frame: Frame) -> Drawn:
    """Rasterise the scene onto ``frame``: grid, text, shading, curves, marks, then paper and scanner."""
    frame = replace(frame, blur=scene.scan.blur)
    lay, rngs = scene.layout, scene.rngs
    t = np.ones((frame.h, frame.w), np.float32)  # transmittance; ink opacity is 1 - t
    blank = frame.any_in_footprint(scene.blank)
    grid = draw_grid(rngs["grid"], t, lay, scene.geometry, frame, blank)
    depth = draw_depth_numbers(rngs["text"], t, lay, scene.geometry, grid, frame, blank)
    draw_header(rngs["text"], t, lay, frame)
    tracks = [tr.track for tr in scene.traces]
    draw_stacks(rngs["text"], t, lay, scene.stacks, [tr.info for tr in scene.traces], tracks, scene.looks, frame)
    paths = [resample_path(tr.y, tr.seg, frame) for tr in scene.traces]
    draw_shading(rngs["shading"], t, lay, frame, _fills(scene.traces, paths))

    dy = frame.shift(scene.geometry.dy_grid)
    borders = np.array([(frame.row(tr.top) + dy, frame.row(tr.bottom) + dy) for tr in lay.tracks], np.float32)
    clipped = [frame.any_in_footprint(tr.clipped) for tr in scene.traces]
    off_border = [_widen(c, 2) for c in clipped]  # a clipped stretch and the columns that lead onto it
    hws = [look.half_width(frame.s) for look in scene.looks]
    strokes = [
        stroke(p, hw, frame.soft(look.soft), look.pen(frame.s), frame.h, frame.w)
        for p, hw, look in zip(paths, hws, scene.looks, strict=True)
    ]
    label, ink = _draw_curves(scene, frame, t, strokes, borders, dict(grid.borders), off_border)
    image = finish(rngs["photo"], rngs["noise"], t, label, ink, scene.scan, frame)

    near = frame.nearest()
    sample = Sample(
        image=image,
        label=label,
        curve_rows=np.stack([p.yc for p in paths]).astype(np.float32),
        curve_classes=np.array([look.cls for look in scene.looks], np.int64),
        curve_tracks=np.array(
            [(frame.row(lay.tracks[k].top), frame.row(lay.tracks[k].bottom)) for k in tracks], np.float32
        ),
        curve_scored=np.stack(
            [
                _scored(p, st, look, hw, frame, label, c)
                for p, st, look, hw, c in zip(paths, strokes, scene.looks, hws, off_border, strict=True)
            ]
        ),
        curve_laps=np.stack(
            [np.where(np.isfinite(p.yc), tr.lap[near], 0) for p, tr in zip(paths, scene.traces, strict=True)]
        ).astype(np.int8),
        curves=tuple(replace(tr.info, style=look.style) for tr, look in zip(scene.traces, scene.looks, strict=True)),
    )
    return Drawn(sample, scene.looks, hws, paths, borders, np.stack(clipped), scene, frame, depth)


def _draw_curves(
    scene: Scene,
    frame: Frame,
    t: npt.NDArray[np.float32],
    strokes: list[Stroke],
    borders: npt.NDArray[np.float32],
    border_hw: dict[float, float],
    off_border: list[npt.NDArray[np.bool_]],
) -> tuple[npt.NDArray[np.uint8], CurveInk]:
    """Label the strokes (random z-order, the later-drawn wins), ignore their ink on track borders, then ink
    them and the hand marks into ``t``. Returns the label and what the visibility pass needs."""
    h, w = t.shape
    label = np.zeros((h, w), np.uint8)
    owner = np.full((h, w), -1, np.int8)  # the curve whose label a pixel carries
    order = [int(k) for k in scene.rngs["curves"].permutation(len(strokes))]
    lf, of = label.ravel(), owner.ravel()
    for k in order:
        st = strokes[k]
        lab = st.flat[(st.coverage >= 0.5) & st.down]
        lf[lab] = scene.looks[k].cls
        of[lab] = k
    for k, (st, tr) in enumerate(zip(strokes, scene.traces, strict=True)):
        # Ink clipped onto a border, or lying on a border line, is not visibly the curve.
        track = scene.layout.tracks[tr.track]
        bad = off_border[k][st.cols]
        for side, row in enumerate((track.top, track.bottom)):
            reach = max(0.5, border_hw[row] * frame.s) + 0.5
            bad |= np.abs(st.rows - borders[tr.track, side, st.cols]) <= reach
        lf[st.flat[(of[st.flat] == k) & bad]] = IGNORE_INDEX

    labelled = np.flatnonzero(of >= 0)
    t_under = t.ravel()[labelled]  # grid, text and shading under the curves
    tf = t.ravel()
    for k in order:
        st = strokes[k]
        tf[st.flat] *= 1.0 - scene.looks[k].dark * st.coverage * st.down
    t_marks = np.ones(labelled.size, np.float32)  # hand marks and stamps go on top, later
    rows, cols = np.divmod(labelled, w)
    for ov in draw_marks(scene.rngs["marks"], scene.layout, frame):
        ov.apply(t)
        t_marks *= ov.transmittance_at(rows, cols)
    return label, CurveInk(labelled, t_under * t_marks, tf[labelled])


def _fills(traces: list[Trace], paths: list[Path]) -> list[tuple[int, Path, Path | None, int]]:
    """Shading candidates: between GR and its track's left edge; the neutron-density crossover."""
    out: list[tuple[int, Path, Path | None, int]] = []
    by_kind = {tr.info.kind: (tr, p) for tr, p in zip(traces, paths, strict=True) if tr.info.backup_of < 0}
    if "GR" in by_kind:
        tr, p = by_kind["GR"]
        out.append((tr.track, p, None, 1))
    if "NPHI" in by_kind and "RHOB" in by_kind and by_kind["NPHI"][0].track == by_kind["RHOB"][0].track:
        (tr, p_n), (_, p_d) = by_kind["NPHI"], by_kind["RHOB"]
        out.append((tr.track, p_d, p_n, -1))  # density left of neutron (above it in rows): gas crossover
    return out


def _widen(cols: npt.NDArray[np.bool_], n: int) -> npt.NDArray[np.bool_]:
    """(w,) bool widened by ``n`` columns on each side."""
    if not cols.any():
        return cols
    return np.convolve(cols.astype(np.float32), np.ones(2 * n + 1, np.float32), mode="same") > 0


def _scored(
    path: Path,
    st: Stroke,
    look: Look,
    hw: float,
    frame: Frame,
    label: npt.NDArray[np.uint8],
    clipped: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    """(w,) bool: columns where curve k is visible as itself (see ``Sample.curve_scored``)."""
    w = frame.w
    fin = np.isfinite(path.yc)
    ok = fin & ~clipped
    pen = look.pen(frame.s)
    if pen is not None:
        ok &= pen.down(arc_lengths(path)[1])
    brk = np.zeros(w + 1, bool)  # brk[j] = an event between columns j - 1 and j
    brk[1:-1] = (fin[:-1] != fin[1:]) | (fin[:-1] & fin[1:] & ~path.connect)
    cs = np.concatenate(([0], np.cumsum(brk)))
    c = np.arange(w)
    near = cs[np.minimum(c + EVENT_MARGIN + 1, w + 1)] - cs[np.maximum(c - EVENT_MARGIN + 1, 0)] > 0  # |c - edge| < 3
    ok &= ~near
    lab = st.flat[(st.coverage >= 0.5) & st.down]
    lab_cols = lab % w
    ok &= np.bincount(lab_cols[label.ravel()[lab] == IGNORE_INDEX], minlength=w)[:w] == 0
    cand = np.flatnonzero(ok)
    reach = 0.5 + 1e-6  # the true point itself is inked: a label pixel of the curve's class covers it
    offs = np.arange(-int(np.ceil(reach)) - 1, int(np.ceil(reach)) + 2)
    rr = np.rint(path.yc[cand])[:, None] + offs[None, :]  # (n, m) rows around the centreline
    inside = (np.abs(rr - path.yc[cand][:, None]) <= reach) & (rr >= 0) & (rr < frame.h)
    ri = np.clip(rr, 0, frame.h - 1).astype(np.int64)
    hit = (inside & (label[ri, cand[:, None]] == look.cls)).any(axis=1)
    out = np.zeros(w, bool)
    out[cand[hit]] = True
    return out
