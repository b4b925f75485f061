"""The formation one log was run in (docs/generator.md, 'Formation'): beds shared by every curve, so curves
correlate and cross where real ones do.

Arrays run along undistorted depth in full-scale columns (depth increases with x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Formation:
    """Per-column rock and fluid properties, before any tool response. Shapes: all (W,) float64."""

    vsh: npt.NDArray[np.float64]  # shale fraction in [0, 1] (bimodal sand/shale beds, graded within beds, laminated)
    phi: npt.NDArray[np.float64]  # effective porosity (v/v)
    sw: npt.NDArray[np.float64]  # water saturation (1 in water-bearing and shale beds)
    gas: npt.NDArray[np.float64]  # 1 in gas-bearing beds, else 0
    tight: npt.NDArray[np.float64]  # 1 in cemented / carbonate streaks (low porosity, high resistivity), else 0
    hot: npt.NDArray[np.float64]  # extra gamma ray (API) of radioactive shale beds
    washout: npt.NDArray[np.float64]  # hole enlargement (in) where soft shale caved
    depth: npt.NDArray[np.float64]  # 0 at the top of the log, 1 at the bottom (compaction trends)


def _beds(rng: np.random.Generator, w: int, t_med: float) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """Bed index per column and the bed thicknesses: Poisson boundaries, log-normal (sigma 0.8) thicknesses."""
    n = int(w / t_med) + 24
    thick = np.maximum(2.0, rng.lognormal(np.log(t_med), 0.8, size=n))
    ends = np.cumsum(thick)
    if ends[-1] < w:  # rare: stretch the sequence to cover the log
        ends *= w / ends[-1] + 1e-6
        thick = np.diff(ends, prepend=0.0)
    idx = np.searchsorted(ends, np.arange(w) + 0.5)
    return idx, thick


def make_formation(rng: np.random.Generator, w: int) -> Formation:
    """Beds with median thickness 10-120 px, V_sh ~ Beta(0.5-0.8, 0.5-0.8) with Markov persistence."""
    t_med = rng.uniform(10, 120)
    idx, thick = _beds(rng, w, t_med)
    n = thick.size
    conc = rng.uniform(0.5, 0.8)
    vals = rng.beta(conc, conc, size=n)
    same = rng.random(n) < rng.uniform(0, 0.5)
    same[0] = False
    vals = vals[np.maximum.accumulate(np.where(same, 0, np.arange(n)))]
    grade = rng.normal(0, 0.25, size=n)  # fining / coarsening upward within a bed
    starts = np.cumsum(thick) - thick
    x = np.arange(w, dtype=np.float64)
    frac = np.clip((x - starts[idx]) / thick[idx], 0.0, 1.0)
    lam_idx, _ = _beds(rng, w, rng.uniform(2, 8))  # laminae: texture inside beds
    lam = rng.uniform(0.02, 0.1) * rng.standard_normal(lam_idx.max() + 1)[lam_idx]
    vsh = np.clip(vals[idx] + grade[idx] * (frac - 0.5) + lam, 0.0, 1.0)

    depth = x / max(1, w - 1)
    sand_bed = vals < 0.4
    tight_bed = sand_bed & (rng.random(n) < rng.uniform(0, 0.12))
    phi_bed = np.clip(rng.uniform(0.12, 0.3) + rng.normal(0, 0.03, size=n), 0.03, 0.38)
    phi_bed = np.where(tight_bed, rng.uniform(0.01, 0.06, size=n), phi_bed)
    hc_bed = sand_bed & ~tight_bed & (rng.random(n) < rng.uniform(0, 0.5))
    gas_bed = hc_bed & (rng.random(n) < rng.uniform(0, 0.6))
    sw_bed = np.where(hc_bed, rng.uniform(0.15, 0.5, size=n), 1.0)
    hot_bed = ~sand_bed & (rng.random(n) < rng.uniform(0, 0.1))
    hot = np.where(hot_bed, rng.uniform(30, 120, size=n), 0.0)
    wash_bed = (vals > 0.55) & (rng.random(n) < rng.uniform(0.05, 0.4))
    wash = np.where(wash_bed, rng.uniform(0.3, 4.0, size=n), 0.0)

    compaction = np.exp(-rng.uniform(0, 0.5) * depth)
    clean = 1.0 - vsh
    taper = np.sin(np.pi * frac) ** 0.5  # caves widen towards the middle of a bed
    return Formation(
        vsh=vsh,
        phi=np.clip(phi_bed[idx] * clean * compaction, 0.005, 0.4),
        sw=np.where(hc_bed[idx], 1.0 - clean * (1.0 - sw_bed[idx]), 1.0),
        gas=(gas_bed[idx] * clean).astype(np.float64),
        tight=tight_bed[idx].astype(np.float64),
        hot=hot[idx],
        washout=wash[idx] * taper,
        depth=depth,
    )
