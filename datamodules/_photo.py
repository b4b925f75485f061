"""Photometric degradations (paper, illumination, fading, stains, creases, gamma, noise, binarisation)
and the visibility pass, in a handful of full-frame float32 passes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules._raster import add_bank_noise, smooth_profile
from datamodules.collate import IGNORE_INDEX

EPS_CONTRAST = 0.05


@dataclass(frozen=True)
class Photo:
    paper: float
    gamma: float
    noise: float
    binarise: float | None  # threshold in [0, 1], or None


def draw_photo(rng: np.random.Generator) -> Photo:
    thr = rng.uniform(0.45, 0.7) if rng.random() < 0.2 else None
    return Photo(rng.uniform(0.8, 1.0), rng.uniform(0.7, 1.4), rng.uniform(0, 0.04), thr)


def finish(rng: np.random.Generator, t: np.ndarray, label: np.ndarray, ph: Photo, scale: float) -> np.ndarray:
    """Turn the transmittance buffer t (consumed) into the uint8 image; set invisible labels to IGNORE_INDEX."""
    h, w = t.shape
    fx = smooth_profile(rng, w, max(2, w // max(8, round(800 * scale))), rng.uniform(0.5, 1.0), 1.0)
    fy = smooth_profile(rng, h, 4, 0.85, 1.0)
    lx = 1.0 + smooth_profile(rng, w, 33, -0.03, 0.03)
    ly = 1.0 + smooth_profile(rng, h, 5, -0.03, 0.03)
    d = np.subtract(1.0, t, out=t)  # ink opacity (H, W)
    d *= fx[None, :]
    d *= fy[:, None]
    idx = np.flatnonzero((label != 0).ravel())  # labelled curve pixels, sparse
    ink = d.ravel()[idx]
    img = np.subtract(1.0, d, out=d)
    img *= (255.0 * ph.paper) * lx[None, :]
    img *= ly[:, None]
    _stains(rng, img, scale)
    _creases(rng, img, scale)

    # Visibility, sparse: img = local paper * (1 - ink) before noise, so local paper = img / (1 - ink).
    v = img.ravel()[idx] / 255.0
    r, c = np.divmod(idx, w)
    p_loc = np.where(ink < 0.99, v / np.maximum(1.0 - ink, 1e-2), ph.paper * lx[c] * ly[r])
    vg, pg = np.clip(v, 0, 1) ** ph.gamma, np.clip(p_loc, 0, 1) ** ph.gamma
    if ph.binarise is None:
        contrast = pg - vg
    else:  # visible only if paper stays white and ink stays black with a noise margin
        margin = max(EPS_CONTRAST, 2.0 * ph.noise)
        contrast = ((pg >= ph.binarise + margin) & (vg < ph.binarise - margin)).astype(np.float32)
    label.ravel()[idx[contrast < EPS_CONTRAST]] = IGNORE_INDEX

    if ph.noise > 0:
        add_bank_noise(img, 255.0 * ph.noise, rng)
    np.clip(img, 0.0, 255.0, out=img)
    q = img.astype(np.uint8)
    lut = 255.0 * (np.arange(256) / 255.0) ** ph.gamma
    if ph.binarise is not None:
        lut = np.where(lut >= 255.0 * ph.binarise, 255.0, 0.0)
    out = np.rint(lut).astype(np.uint8)[q]
    n_sp = int(rng.uniform(0, 0.002) * h * w)
    out.ravel()[rng.integers(0, h * w, n_sp)] = rng.choice(np.array([0, 255], np.uint8), n_sp)
    if rng.random() < 0.02:  # torn / missing strip
        a = int(rng.integers(0, w))
        b = a + max(1, round(rng.uniform(20, 200) * scale))
        out[:, a:b] = np.uint8(min(255, round(255 * ph.paper**ph.gamma)))
        label[:, a:b] = IGNORE_INDEX
    return out


def _stains(rng: np.random.Generator, img: np.ndarray, scale: float) -> None:
    h, w = img.shape
    for _ in range(int(rng.integers(0, 4))):
        rad = max(2.0, rng.uniform(30, 300) * scale)
        cy, cx, dark = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.05, 0.25)
        r0, r1 = max(0, int(cy - rad)), min(h, int(cy + rad) + 1)
        c0, c1 = max(0, int(cx - rad)), min(w, int(cx + rad) + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        yy = (np.arange(r0, r1, dtype=np.float32)[:, None] - cy) / rad
        xx = (np.arange(c0, c1, dtype=np.float32)[None, :] - cx) / rad
        rr = np.sqrt(yy * yy + xx * xx)
        prof = np.clip(1.0 - rr, 0.0, 1.0) ** 0.5 if rng.random() < 0.6 else np.exp(-(((rr - 0.8) / 0.1) ** 2))
        img[r0:r1, c0:c1] *= 1.0 - dark * prof


def _creases(rng: np.random.Generator, img: np.ndarray, scale: float) -> None:
    if rng.random() >= 0.5:
        return
    _, w = img.shape
    every = max(4.0, rng.uniform(600, 1200) * scale)
    width = max(1, round(rng.uniform(1, 3) * scale))
    shadow = max(1, round(3 * scale))
    dark = rng.uniform(0.1, 0.3)
    for x in np.arange(rng.uniform(0, every), w, every).astype(int):
        img[:, x : x + width] *= 1.0 - dark
        img[:, x + width : x + width + shadow] *= 1.0 - dark / 2
