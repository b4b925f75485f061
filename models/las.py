"""From a segmentation to a LAS 2.0 file: trace the registered curves, resample them to depth, write through lasio.

It lives in ``models`` because it is the last step of reading curves off a model's output: it needs the tracing
(``models.traced``) and the registration (``datamodules.registration``) and nothing of a study, and
``study.predict`` and ``bench.las`` above both use it (``results`` holds what a study keeps, which a LAS of one
scan is not).

The depth index (``DEPT``, feet or metres as registered) runs with a constant ``STEP`` from the first to the last
multiple of the step inside the image's depth range, so STRT and STOP are multiples of STEP. A curve's value at a
depth is interpolated linearly in track position (so log-linearly on a log track) between the two columns around
that depth; it is NULL (-999.25) where either column has no sample (the curve is absent, off scale on a clipping
track, or in a gap longer than a dash space) or the interpolated confidence is below ``MIN_CONFIDENCE``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import lasio
import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, ImageDraw

from datamodules.registration import DEPTH_UNITS, INDEX_MNEMONIC, Registration
from models.modes import TaskMode
from models.traced import trace_registered
from models.tracing import TracedCurve

NULL = -999.25
DEFAULT_STEP = 0.5
MIN_CONFIDENCE = 0.5
DATA_FORMAT = "%.6g"  # six significant digits: a round trip keeps four with room to spare
NOTE = (
    "Digitised from a raster by welllog-study: curves traced from the segmentation, resampled to STEP "
    "by linear interpolation in track position; NULL where a curve is absent, off scale, in a gap or below "
    "confidence {conf:g}."
)
CURVE_COLOURS = ((230, 25, 25), (30, 60, 230), (0, 150, 60), (200, 0, 200), (230, 130, 0), (0, 160, 190))


def step_decimals(step: float) -> int:
    """Decimals that write ``step`` and its multiples exactly (0.5 -> 1, 0.25 -> 2, 1 -> 0; at most 6)."""
    for d in range(7):
        if abs(round(step, d) - step) < 1e-9:
            return d
    return 6


def depth_grid(registration: Registration, step: float) -> npt.NDArray[np.float64]:
    """Increasing depths k * step covering the image's columns (each inside its depth range).

    Shape: (N,) float64, N >= 1; empty when the image spans less than one step.
    """
    ends = registration.depth_at(np.array([0.0, registration.width - 1.0]))
    lo, hi = float(ends.min()), float(ends.max())
    k0, k1 = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return np.round(np.arange(k0, k1 + 1, dtype=np.float64) * step, step_decimals(step) + 3)


def resample(
    curve: TracedCurve, registration: Registration, depths: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """A traced curve's value and confidence at ``depths`` (N,): NaN value where it has none (see module doc)."""
    x = registration.column_at(depths)
    w = curve.u.size
    x0 = np.clip(np.floor(x).astype(np.int64), 0, w - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    frac = np.clip(x - x0, 0.0, 1.0)
    inside = (x >= -1e-6) & (x <= w - 1 + 1e-6)
    u = _lerp(curve.u, x0, x1, frac)
    conf = _lerp(curve.conf, x0, x1, frac)
    ok = inside & np.isfinite(u)
    values = np.where(ok, curve.scale.value(np.where(ok, u, 0.0) / curve.height), np.nan)
    return values, np.where(ok, conf, 0.0)


def _lerp(
    v: npt.NDArray[np.float64], x0: npt.NDArray[np.int64], x1: npt.NDArray[np.int64], frac: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """v between columns x0 and x1; exactly v[x0] on a column (a NaN next to it does not spread)."""
    between = (1 - frac) * v[x0] + frac * v[x1]
    return np.where(frac == 0, v[x0], np.where(frac == 1, v[x1], between))


@dataclass(frozen=True)
class Digitised:
    """One scan's curves: as traced, as a LAS file in memory, and the summary the folder mode tabulates."""

    curves: list[TracedCurve]
    las: lasio.LASFile
    registered: int
    found: int
    samples: int
    null: int
    mean_confidence: float

    def summary(self) -> dict[str, float | int]:
        return {
            "curves_registered": self.registered,
            "curves_found": self.found,
            "samples": self.samples,
            "samples_null": self.null,
            "mean_confidence": round(self.mean_confidence, 4),
        }


def build_las(
    registration: Registration,
    curves: list[TracedCurve],
    step: float = DEFAULT_STEP,
    min_confidence: float = MIN_CONFIDENCE,
) -> Digitised:
    """The LAS 2.0 file of traced curves: DEPT first, one curve per registered curve, NULL where it has no value."""
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"step must be > 0, got {step}")
    depths = depth_grid(registration, step)
    unit = DEPTH_UNITS[registration.depth_unit]
    las = lasio.LASFile()
    if "DLM" in las.version:
        del las.version["DLM"]  # a LAS 3.0 item; LAS 2.0's ~Version holds VERS and WRAP
    las.well["NULL"].value = NULL
    for key, value in registration.well.items():
        if key in las.well:
            las.well[key].value = value
        else:
            las.well.append(lasio.HeaderItem(key, "", value, ""))
    las.append_curve(INDEX_MNEMONIC, depths, unit=unit, descr="depth")
    confs: list[float] = []
    found = null = 0
    for c in curves:
        values, conf = resample(c, registration, depths)
        values = np.where(conf >= min_confidence, values, np.nan)
        ok = np.isfinite(values)
        found += bool(ok.any())
        null += int((~ok).sum())
        confs += conf[ok].tolist()
        s = c.scale
        scale = "log" if s.scale == "log" else "linear"
        descr = f"{s.description + '; ' if s.description else ''}track {c.track + 1}, {scale} {s.left:g} to {s.right:g}"
        las.append_curve(s.mnemonic, values, unit=s.unit, descr=f"{descr}, {s.offscale}")
    las.other = NOTE.format(conf=min_confidence)
    return Digitised(
        curves,
        las,
        len(curves),
        found,
        depths.size * len(curves),
        null,
        float(np.mean(confs)) if confs else 0.0,
    )


def las_text(las: lasio.LASFile, step: float) -> str:
    """The LAS 2.0 text of ``las``: STRT, STOP and STEP written from the index with the step's decimals."""
    depths = np.asarray(las.index, np.float64)
    d = step_decimals(step)
    fmt = f"%.{d}f"
    out = io.StringIO()
    las.write(
        out,
        version=2.0,
        wrap=False,
        STRT=fmt % depths[0] if depths.size else fmt % 0.0,
        STOP=fmt % depths[-1] if depths.size else fmt % 0.0,
        STEP=fmt % step,
        fmt=DATA_FORMAT,
        column_fmt={0: fmt},
    )
    return out.getvalue()


def write_las(las: lasio.LASFile, step: float, path: Path) -> None:
    """Write ``las`` as a LAS 2.0 file (``las_text``)."""
    path.write_text(las_text(las, step))


def digitise(
    mode: TaskMode,
    logits: torch.Tensor,
    registration: Registration,
    step: float = DEFAULT_STEP,
    min_confidence: float = MIN_CONFIDENCE,
) -> Digitised:
    """Trace the registered curves of one image's logits and build its LAS file.

    Shape: logits (1, C, H, W) of ``mode``; H and W must be the registration's.
    """
    classes = mode.predict(logits)[0].numpy()  # (H, W)
    probs = mode.probabilities(logits)[0].numpy()  # (K, H, W)
    masks = {c: classes == c for c in mode.curve_classes}
    curves = trace_registered(masks, {c: probs[c] for c in mode.curve_classes}, registration)
    return build_las(registration, curves, step, min_confidence)


def las_overlay(image: npt.NDArray[np.uint8], registration: Registration, las: lasio.LASFile) -> npt.NDArray[np.uint8]:
    """(H, W) grey scan + a LAS file -> (H, W, 3) uint8: the scan, lightened, with every LAS curve drawn back where
    its registration plots it (each lap at its own place, a break at every lap change and NULL) and named."""
    light = (155 + 100 * (image.astype(np.float32) / 255.0)).astype(np.uint8)
    canvas = Image.fromarray(np.repeat(light[:, :, None], 3, axis=2), mode="RGB")
    draw = ImageDraw.Draw(canvas)
    depths = np.asarray(las.index, np.float64)
    cols = registration.column_at(depths)
    for n, (t, scale) in enumerate(registration.curves()):
        if scale.mnemonic not in las.keys():  # noqa: SIM118 (lasio's LASFile is no dict: `in` looks elsewhere)
            continue
        colour = CURVE_COLOURS[n % len(CURVE_COLOURS)]
        top, bottom = registration.tracks[t].top, registration.tracks[t].bottom
        pos = scale.position(np.asarray(las[scale.mnemonic], np.float64))
        lap = np.floor(pos)
        rows = bottom + registration.offset_at(cols) - (pos - lap) * (bottom - top)
        ok = np.isfinite(rows)
        label_at = None
        for i in range(depths.size - 1):
            if ok[i] and ok[i + 1] and lap[i] == lap[i + 1]:
                draw.line([(cols[i], rows[i]), (cols[i + 1], rows[i + 1])], fill=colour, width=1)
                if label_at is None:
                    label_at = (cols[i], rows[i])
        if label_at is not None:
            draw.text((label_at[0] + 2, max(0.0, label_at[1] - 10)), scale.mnemonic, fill=colour)
    return np.asarray(canvas, dtype=np.uint8)
