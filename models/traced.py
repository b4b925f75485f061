"""The registered curves of an image, read by two tracers and kept where they agree (rules in ``docs/tracing.md``).

Tracing a curve through the ink of other curves of its class is where a digitiser goes wrong: a swap where two
curves meet, a wrapped curve put on the wrong lap. Two tracers that go about it differently rarely make the same
mistake: ``models.tracing.trace_chains`` follows every curve of a class at once and links the fragments into
chains, then gives each registered curve the pieces nearest its picks; ``models.tracing_paths.trace_paths``
follows each registered curve alone as the cheapest path through its picks. A sample is kept where both place
the curve within ``AGREE`` of the track height of each other (their mean, at the lower confidence); elsewhere it
has confidence 0, which the LAS file writes as NULL. Each tracer first interpolates holes as short as a dash space.

A curve is on scale (lap 0) most of the time, and its picks say where it is not: a stretch of agreed samples off
scale (on a lap other than 0, between two holes or lap changes) is kept only if a pick on that lap lies in it.
Both tracers can carry a lap on past the place where the curve came back on scale when it comes back level with
where it left; the picks of a wrapped curve's laps and of a backup trace are what tell.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from datamodules.registration import CurveScale, Registration
from models.tracing import Band, TracedCurve, bridge_holes, trace_chains
from models.tracing_paths import trace_paths

AGREE = 0.03  # two tracers agree on a sample within this share of the track height


def trace_registered(
    masks: dict[int, npt.NDArray[np.bool_]],
    probs: dict[int, npt.NDArray[np.floating]],
    registration: Registration,
) -> list[TracedCurve]:
    """Every registered curve of an image, in registration order: the samples both tracers agree on.

    Args:
        masks: class -> (H, W) bool, the pixels the decision rule gives that class.
        probs: class -> (H, W) float, its probability (weights of the run centres and the confidence).
    """
    out = []
    for a, b in zip(trace_chains(masks, probs, registration), trace_paths(masks, probs, registration), strict=True):
        band = Band(*registration.band(a.track))
        clipping = a.scale.offscale != "wrap"
        (ua, ca), (ub, cb) = bridge_holes(a.u, a.conf, band, clipping), bridge_holes(b.u, b.conf, band, clipping)
        with np.errstate(invalid="ignore"):
            agree = np.abs(ua - ub) <= AGREE * a.height
        u = np.where(agree, (ua + ub) / 2.0, np.nan)
        conf = np.where(agree, np.minimum(ca, cb), 0.0)
        unpicked = _unpicked_laps(u, a.scale, a.height)
        u[unpicked], conf[unpicked] = np.nan, 0.0
        out.append(TracedCurve(a.track, a.scale, u, conf, a.height))
    return out


def _unpicked_laps(u: npt.NDArray[np.float64], scale: CurveScale, height: float) -> npt.NDArray[np.bool_]:
    """(W,) the samples of the stretches off scale that hold no pick on their lap (see the module docstring)."""
    known = np.isfinite(u)
    lap = np.floor(np.where(known, u, 0.0) / height).astype(np.int64)
    new = np.ones(u.size, bool)
    new[1:] = (lap[1:] != lap[:-1]) | (known[1:] != known[:-1])
    starts = np.flatnonzero(new)
    ends = np.concatenate([starts[1:], [u.size]])
    picked = [(round(p.column), p.lap) for p in scale.picks]
    out = np.zeros(u.size, bool)
    for a, b in zip(starts.tolist(), ends.tolist()):
        if known[a] and lap[a] != 0 and not any(a - 2 <= c < b + 2 and q == lap[a] for c, q in picked):
            out[a:b] = True
    return out
