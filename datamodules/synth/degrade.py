"""Photometric and scanner degradations (docs/generator.md, 'Scan effects') and the visibility pass
(docs/generator.md, 'Labels').

Geometry (rotation, feed wander, stretch, mis-registration) was applied to vector geometry before
rasterising, so labels are exact; everything here changes the image only. Afterwards, labelled curve pixels
that no longer show as the curve (contrast against what is under them < ``EPS_CONTRAST``) become
``IGNORE_INDEX``, as do torn strips and punch holes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from datamodules.labels import IGNORE_INDEX
from datamodules.synth.raster import Frame, add_bank_noise, smooth_profile

EPS_CONTRAST = 0.05


@dataclass(frozen=True)
class Scan:
    """How the paper aged and how it was scanned. ``blur`` is full-scale px (added to every stroke's softness
    in vector space); ``resample`` a scanner down-and-up resampling factor; ``jpeg`` a quality."""

    paper: float
    gamma: float
    noise: float
    binarise: float | None  # threshold in [0, 1] (1-bit TIFF scans), or None
    blur: float
    resample: float | None
    jpeg: int | None


def draw_scan(rng: np.random.Generator) -> Scan:
    binarise = rng.uniform(0.45, 0.7) if rng.random() < 0.2 else None
    paper, gamma, noise = rng.uniform(0.8, 1.0), rng.uniform(0.7, 1.4), rng.uniform(0, 0.04)
    blur = rng.uniform(0.2, 0.8) if rng.random() < 0.5 else 0.0
    resample = rng.uniform(0.5, 0.85) if rng.random() < 0.25 else None
    quality = int(rng.integers(25, 91))
    jpeg = quality if rng.random() < 0.4 and binarise is None else None  # 1-bit scans are not JPEG-coded
    return Scan(paper, gamma, noise, binarise, blur, resample, jpeg)


@dataclass(frozen=True)
class CurveInk:
    """Labelled curve pixels, for the visibility pass. Shapes: (N,).

    t_bg is the transmittance there without any curve (grid, text, shading and marks only), t_all with
    everything.
    """

    idx: npt.NDArray[np.intp]
    t_bg: npt.NDArray[np.float32]
    t_all: npt.NDArray[np.float32]


def finish(
    rng: np.random.Generator,
    noise_rng: np.random.Generator,
    t: npt.NDArray[np.float32],
    label: npt.NDArray[np.uint8],
    ink: CurveInk,
    scan: Scan,
    frame: Frame,
) -> npt.NDArray[np.uint8]:
    """Turn the transmittance buffer ``t`` (consumed) into the uint8 image; update ``label`` in place.

    ``noise_rng`` draws only what depends on the output size (noise windows, salt and pepper), so
    everything drawn from ``rng`` is the same at every scale.
    """
    h, w = t.shape
    knots = max(2, frame.full_w // 800)
    fx = smooth_profile(rng, w, knots, rng.uniform(0.5, 1.0), 1.0)  # fading of the ink
    fy = smooth_profile(rng, h, 4, 0.85, 1.0)
    lx = 1.0 + smooth_profile(rng, w, 33, -0.03, 0.03)  # illumination / yellowing
    ly = 1.0 + smooth_profile(rng, h, 5, -0.03, 0.03)
    # img = paper * L * (1 - F * (1 - t)), separable fields, in place.
    img = t
    img -= 1.0
    img *= fx[None, :]
    img *= fy[:, None]
    img += 1.0
    img *= (255.0 * scan.paper) * lx[None, :]
    img *= ly[:, None]
    _stains(rng, img, frame)
    _creases(rng, img, frame)

    r, c = np.divmod(ink.idx, w)
    f = fx[c] * fy[r]
    q_all, q_bg = 1.0 - f * (1.0 - ink.t_all), 1.0 - f * (1.0 - ink.t_bg)
    v = img.ravel()[ink.idx] / 255.0
    paper = np.where(q_all > 0.02, v / np.maximum(q_all, 0.02), scan.paper * lx[c] * ly[r])  # local paper
    v_bg = np.clip(paper * q_bg, 0, 1) ** scan.gamma
    v_all = np.clip(v, 0, 1) ** scan.gamma
    att = scan.resample if scan.resample is not None else 1.0  # a thin line loses contrast when resampled
    if scan.binarise is None:
        label.ravel()[ink.idx[(v_bg - v_all) * att < EPS_CONTRAST]] = IGNORE_INDEX
    else:  # a curve shows only where its background stays white
        label.ravel()[ink.idx[v_bg < scan.binarise + max(EPS_CONTRAST, 2 * scan.noise)]] = IGNORE_INDEX

    if scan.noise > 0:
        add_bank_noise(img, 255.0 * scan.noise, noise_rng)
    np.clip(img, 0.0, 255.0, out=img)
    q = img.astype(np.uint8)
    if scan.resample is not None:
        im = Image.fromarray(q)
        small = im.resize((max(1, round(w * scan.resample)), max(1, round(h * scan.resample))), Image.Resampling.BOX)
        q = np.asarray(small.resize((w, h), Image.Resampling.BILINEAR))
    lut = 255.0 * (np.arange(256) / 255.0) ** scan.gamma
    if scan.binarise is not None:
        lut = np.where(lut >= 255.0 * scan.binarise, 255.0, 0.0)
    out = np.array(Image.fromarray(q).point(np.rint(lut).astype(np.uint8).tolist()))  # gamma (and threshold)
    n_sp = int(noise_rng.uniform(0, 0.002) * h * w)  # salt and pepper
    out.ravel()[noise_rng.integers(0, h * w, n_sp)] = noise_rng.choice(np.array([0, 255], np.uint8), n_sp)
    if scan.binarise is not None:  # 1-bit: a labelled curve pixel must be black
        flat = label.ravel()
        lab = np.flatnonzero((flat != 0) & (flat != IGNORE_INDEX))
        flat[lab[out.ravel()[lab] != 0]] = IGNORE_INDEX
    if scan.jpeg is not None:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=scan.jpeg)
        out = np.array(Image.open(io.BytesIO(buf.getvalue())))
    _tears_and_holes(rng, out, label, scan, frame)
    return out


def _stains(rng: np.random.Generator, img: npt.NDArray[np.float32], frame: Frame) -> None:
    """0-3 soft discs or rings (coffee) of radius 30-300 px, darkening 0.05-0.25, on their boxes only."""
    h, w = img.shape
    for _ in range(int(rng.integers(0, 4))):
        rad_f, cy_f, cx_f = rng.uniform(30, 300), rng.uniform(0, frame.full_h), rng.uniform(0, frame.full_w)
        dark, ring = rng.uniform(0.05, 0.25), rng.random() >= 0.6
        rad, cy, cx = max(2.0, rad_f * frame.s), frame.row(cy_f), frame.col(cx_f)
        r0, r1 = max(0, int(cy - rad)), min(h, int(cy + rad) + 1)
        c0, c1 = max(0, int(cx - rad)), min(w, int(cx + rad) + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        yy = (np.arange(r0, r1, dtype=np.float32)[:, None] - cy) / rad
        xx = (np.arange(c0, c1, dtype=np.float32)[None, :] - cx) / rad
        rr = np.sqrt(yy * yy + xx * xx)
        prof = np.exp(-(((rr - 0.8) / 0.1) ** 2)) if ring else np.clip(1.0 - rr, 0.0, 1.0) ** 0.5
        img[r0:r1, c0:c1] *= 1.0 - dark * prof


def _creases(rng: np.random.Generator, img: npt.NDArray[np.float32], frame: Frame) -> None:
    """Fan-fold creases (p = 0.5): lines across the page every 600-1200 px with a one-sided shadow."""
    crease = rng.random() < 0.5
    every, width, dark, first = rng.uniform(600, 1200), rng.uniform(1, 3), rng.uniform(0.1, 0.3), rng.random()
    if not crease:
        return
    wpx, shadow = max(1, round(width * frame.s)), max(1, round(3 * frame.s))
    for x in np.arange(first * every, frame.full_w, every):
        c = round(frame.col(x))
        img[:, c : c + wpx] *= 1.0 - dark
        img[:, c + wpx : c + wpx + shadow] *= 1.0 - dark / 2


def _tears_and_holes(
    rng: np.random.Generator, out: npt.NDArray[np.uint8], label: npt.NDArray[np.uint8], scan: Scan, frame: Frame
) -> None:
    """A torn / missing strip (p = 0.02) shows paper; punch holes (p = 0.05) near an edge show the dark
    scanner lid. Nothing there counts."""
    tear, a_f, len_f = rng.random() < 0.02, rng.uniform(0, frame.full_w), rng.uniform(20, 200)
    holes, n, tone = rng.random() < 0.05, int(rng.integers(1, 5)), rng.uniform(0.05, 0.3)
    spots = [
        (rng.uniform(0, frame.full_w), rng.uniform(8, 20), rng.random() < 0.5, rng.uniform(6, 14)) for _ in range(n)
    ]
    h, w = out.shape
    if tear:
        a = int(frame.col(a_f))
        b = a + max(1, round(len_f * frame.s))
        out[:, a:b] = np.uint8(min(255, round(255 * scan.paper**scan.gamma)))
        label[:, a:b] = IGNORE_INDEX
    if holes:
        for x, edge, top, rad_f in spots:
            cy = frame.row(edge if top else frame.full_h - edge)
            cx, rad = frame.col(x), max(1.0, rad_f * frame.s)
            r0, r1 = max(0, int(cy - rad)), min(h, int(cy + rad) + 2)
            c0, c1 = max(0, int(cx - rad)), min(w, int(cx + rad) + 2)
            yy, xx = np.ogrid[r0:r1, c0:c1]
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= rad * rad
            out[r0:r1, c0:c1][disc] = np.uint8(round(255 * tone))
            label[r0:r1, c0:c1][disc] = IGNORE_INDEX
