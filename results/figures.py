"""The report's figures: matplotlib (Agg, no pyplot state) drawn from the study tables, encoded by Pillow.

Each function takes plain frames of one task (the trials and epochs tables filtered to it) and returns PNG
bytes. Statuses keep one colour everywhere; a trial without a row in the trials table yet is ``running``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.typing import RcKeyType
from PIL import Image

from datamodules.labels import IGNORE_INDEX
from datamodules.preview import COLOURS
from results.schema import FINAL_STATUSES, STATUSES

STATUS_COLOURS: dict[str, str] = dict(
    zip(STATUSES, ("#2a9d3f", "#e08a00", "#d62728", "#1f77b4", "#7f7f7f"), strict=True)
)
RUNNING = "running"
ENDED_EARLY = frozenset(FINAL_STATUSES) - {"completed"}  # cut by ASHA, or errored: their last epoch is marked
WIDTH_IN = 10.0  # every figure is 1,000 px wide at DPI
DPI = 100
_STYLE: dict[RcKeyType, float] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
}


def new_figure(height_in: float, **kwargs: Any) -> Figure:
    with mpl.rc_context(_STYLE):
        return Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained", **kwargs)


def png(fig: Figure) -> bytes:
    """Render ``fig`` with Agg and encode it as an 8-bit palette PNG through Pillow.

    256 colours hold a plot and a grey raster with its class colours; the page is about 5x smaller than with
    RGB PNGs, and quicker to write.
    """
    canvas = FigureCanvasAgg(fig)
    # matplotlib's backend_agg carries no annotations (no stub for it): draw and buffer_rgba are untyped there.
    with mpl.rc_context(_STYLE):
        canvas.draw()  # type: ignore[no-untyped-call]
    rgba = np.asarray(canvas.buffer_rgba())  # type: ignore[no-untyped-call]  # (H, W, 4) uint8
    rgb = Image.fromarray(np.ascontiguousarray(rgba[:, :, :3]))
    palette = rgb.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    palette.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _better(mode: str) -> np.ufunc:
    return np.fmin if mode == "min" else np.fmax


def _status_of(trials: pd.DataFrame) -> dict[str, str]:
    return {str(t): str(s) for t, s in zip(trials["trial_id"], trials["status"])}


def _legend(ax: Axes, statuses: Sequence[str], counts: Mapping[Hashable, int]) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=STATUS_COLOURS[s], lw=2, label=f"{s.replace('_', ' ')} ({counts.get(s, 0)})")
        for s in statuses
        if counts.get(s, 0)
    ]
    if handles:
        ax.legend(handles=handles, loc="best", framealpha=0.8)


def learning_curves(
    epochs: pd.DataFrame, trials: pd.DataFrame, objective: str, rungs: Sequence[int], budget: int
) -> bytes:
    """The objective per trial against epoch, coloured by status, ASHA's rungs dotted, each cut marked x;
    beside it, where the trials ended (epochs run, by status)."""
    status = _status_of(trials)
    fig = new_figure(4.2)
    ax, ends = fig.subplots(1, 2, width_ratios=(3, 1))
    for trial_id, rows in epochs.sort_values("epoch").groupby("trial_id", sort=True, observed=True):
        s = status.setdefault(str(trial_id), RUNNING)  # epochs before the trial's row: it runs
        x, y = rows["epoch"].astype(int).to_numpy(), rows[objective].astype(float).to_numpy()
        ax.plot(x, y, color=STATUS_COLOURS[s], lw=1.2, alpha=0.85, marker="." if len(x) < 12 else None)
        if s in ENDED_EARLY:
            ax.plot(x[-1:], y[-1:], ls="", marker="x", ms=8, mew=2, color=STATUS_COLOURS[s])
    for k, rung in enumerate(rungs):
        for a in (ax, ends):
            a.axvline(rung, color="0.35", ls=":", lw=1)
        ax.annotate(f"rung {k + 1}", (rung, 1), xycoords=("data", "axes fraction"), xytext=(2, -10),
                    textcoords="offset points", fontsize=7, color="0.3")  # fmt: skip
    ax.set_xlim(0.5, max(budget, 1) + 0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel(objective)
    ax.set_title(f"{objective} per trial (x: the last epoch of a trial cut by ASHA, or errored)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    _legend(ax, STATUSES, pd.Series(list(status.values()), dtype=object).value_counts().to_dict())
    # Where trials ended: epochs run per trial, stacked by status.
    done = trials[["status", "epochs_completed"]].dropna()
    edges = np.arange(0.5, max(budget, 1) + 1.5)
    bottom = np.zeros(len(edges) - 1)
    for s in STATUSES:
        n = np.histogram(done.loc[done["status"] == s, "epochs_completed"].astype(int), bins=edges)[0]
        if n.any():
            ends.bar(edges[:-1] + 0.5, n, bottom=bottom, color=STATUS_COLOURS[s], width=0.8)
            bottom += n
    ends.set_xlim(0.5, max(budget, 1) + 0.5)
    if budget <= 12:
        ends.set_xticks(range(1, budget + 1))
    ends.set_xlabel("epochs run")
    ends.set_ylabel("trials")
    ends.set_title("where trials ended")
    ends.yaxis.get_major_locator().set_params(integer=True)
    return png(fig)


def best_so_far(
    trials: pd.DataFrame, epochs: pd.DataFrame, devices: Mapping[str, float], objective: str, mode: str
) -> bytes:
    """Best objective so far against trials started (each trial's own best as a dot) and against the
    device-hours its epochs consumed, in the order they finished. Errored trials are left out."""
    better = _better(mode)
    fig = new_figure(3.6)
    by_trial, by_cost = fig.subplots(1, 2)
    ok = trials[trials["status"] != "error"].copy()
    ok = ok.sort_values(["started_at", "trial_id"], na_position="last")
    values = ok["objective_best"].astype(float).to_numpy()
    n = np.arange(1, len(ok) + 1)
    if len(ok):
        colours = [STATUS_COLOURS[str(s)] for s in ok["status"]]
        by_trial.scatter(n, values, c=colours, s=18, zorder=3)
        running = better.accumulate(np.where(np.isnan(values), np.nan, values))
        by_trial.step(n, running, where="post", color="k", lw=1.5, label="best so far")
        by_trial.legend(loc="best")
    by_trial.set_xlabel("trials started")
    by_trial.set_ylabel(objective)
    by_trial.set_title("best so far, by trials started")
    by_trial.xaxis.get_major_locator().set_params(integer=True)
    rows = epochs[~epochs["trial_id"].isin(trials.loc[trials["status"] == "error", "trial_id"])]
    rows = rows.sort_values(["timestamp", "trial_id", "epoch"], na_position="last")
    if len(rows):
        cost = rows["epoch_seconds"].astype(float).fillna(0.0) * rows["trial_id"].map(devices).astype(float).fillna(1)
        hours = np.cumsum(cost.to_numpy()) / 3600.0
        best = better.accumulate(rows[objective].astype(float).to_numpy())
        by_cost.step(hours, best, where="post", color="k", lw=1.5)
        by_cost.scatter(hours, rows[objective].astype(float), s=6, color="0.6", zorder=2, label="each epoch")
        by_cost.legend(loc="best")
    by_cost.set_xlabel("device-hours spent on epochs")
    by_cost.set_title("best so far, by device-hours")
    return png(fig)


def importance_bars(importances: Mapping[str, float]) -> bytes:
    names = list(importances)[::-1]
    fig = new_figure(0.6 + 0.32 * max(len(names), 2))
    ax = fig.subplots()
    ax.barh(names, [importances[n] for n in names], color="#4c72b0")
    for i, n in enumerate(names):
        ax.text(importances[n], i, f" {importances[n]:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(1e-9, max(importances.values())) * 1.15)
    ax.set_xlabel("importance (PED-ANOVA, sums to 1)")
    ax.set_title("parameter importance")
    ax.grid(axis="y", visible=False)
    return png(fig)


def slices(trials: pd.DataFrame, params: Sequence[str], log: Mapping[str, bool], objective: str) -> bytes:
    """The objective (each finished trial's best) against each parameter; categorical values jittered."""
    cols = min(3, len(params))
    nrows = math.ceil(len(params) / cols)
    fig = new_figure(2.8 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    y = trials["objective_best"].astype(float).to_numpy()
    colours = [STATUS_COLOURS[str(s)] for s in trials["status"]]
    rng = np.random.default_rng(0)
    for ax, name in zip(axes, params):
        values = trials["param_" + name]
        have = values.notna().to_numpy()
        if pd.api.types.is_string_dtype(values.dtype):
            cats = sorted(values.dropna().astype(str).unique())
            x = values.astype(str).map({c: i for i, c in enumerate(cats)}).to_numpy(dtype=float, na_value=np.nan)
            x = x + rng.uniform(-0.15, 0.15, len(x))
            ax.set_xticks(range(len(cats)), cats, rotation=20, ha="right")
        else:
            x = values.astype(float).to_numpy()
            if log.get(name):
                ax.set_xscale("log")
        ax.scatter(x[have], y[have], c=[c for c, h in zip(colours, have) if h], s=22, edgecolor="k", lw=0.3)
        ax.set_title(name)
        ax.set_ylabel(objective)
    for ax in axes[len(params) :]:
        ax.set_visible(False)
    return png(fig)


def cost(trials: pd.DataFrame, epochs: pd.DataFrame) -> bytes:
    """Device-hours spent by status and saved by early stopping; images/s and padded share per epoch."""
    status = _status_of(trials)
    fig = new_figure(3.4)
    spent_ax, speed_ax, pad_ax = fig.subplots(1, 3, width_ratios=(1, 1.4, 1.4))
    devices = trials["devices"].astype(float).fillna(1.0)
    spent = (trials["device_seconds"].astype(float).fillna(0.0) / 3600).groupby(trials["status"]).sum()
    saved = float((trials["seconds_saved"].astype(float).fillna(0.0) * devices).sum() / 3600)
    labels, heights, colours = [], [], []
    for s in STATUSES:
        if s in spent.index:
            labels.append(s.replace("_", "\n"))
            heights.append(float(spent[s]))
            colours.append(STATUS_COLOURS[s])
    labels.append("saved by\nASHA")
    heights.append(saved)
    colours.append("#9ecae1")
    bars = spent_ax.bar(labels, heights, color=colours)
    bars[-1].set_hatch("//")
    spent_ax.set_ylabel("device-hours")
    spent_ax.set_title("spent and saved")
    spent_ax.tick_params(axis="x", labelsize=7)
    for ax, column, title in (
        (speed_ax, "images_per_second", "training images / s"),
        (pad_ax, "pad_fraction", "padded share of pixels"),
    ):
        for trial_id, rows in epochs.sort_values("epoch").groupby("trial_id", sort=True, observed=True):
            s = status.get(str(trial_id), RUNNING)
            ax.plot(rows["epoch"].astype(int), rows[column].astype(float), color=STATUS_COLOURS[s], lw=1, marker=".")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.xaxis.get_major_locator().set_params(integer=True)
    pad_ax.set_ylim(bottom=0)
    return png(fig)


def two_sets(points: pd.DataFrame, curves: pd.DataFrame, first: str, second: str, best: str) -> bytes:
    """A metric on the first validation set against the second (``--val-data``): each trial at its best epoch
    (the diagonal is no gap), and the best trial's learning curve on both.

    Args:
        points: one row per trial: ``trial_id``, ``status`` and the two metric columns.
        curves: the best trial's epoch rows (``epoch`` and the two metric columns).
        first, second: the metric's names on the two sets (``val_*``, ``val2_*``).
        best: the best trial's id.
    """
    fig = new_figure(3.8)
    scatter_ax, curve_ax = fig.subplots(1, 2)
    x, y = points[first].astype(float).to_numpy(), points[second].astype(float).to_numpy()
    colours = [STATUS_COLOURS.get(str(s), STATUS_COLOURS[RUNNING]) for s in points["status"]]
    scatter_ax.scatter(x, y, c=colours, s=28, edgecolor="k", lw=0.3, zorder=3)
    for trial_id, xi, yi in zip(points["trial_id"].astype(str), x, y):
        if trial_id == best and np.isfinite(xi) and np.isfinite(yi):
            scatter_ax.annotate("best", (xi, yi), xytext=(4, 4), textcoords="offset points", fontsize=8)
    finite = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        pad = 0.05 * max(hi - lo, 1e-6)
        scatter_ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", ls="--", lw=1, label="no gap")
        scatter_ax.legend(loc="best")
    scatter_ax.set_xlabel(f"{first} (first validation set)")
    scatter_ax.set_ylabel(f"{second} (second validation set)")
    scatter_ax.set_title("each trial at its best epoch")
    rows = curves.sort_values("epoch")
    for column, colour, name in ((first, "#1f77b4", "first set"), (second, "#d62728", "second set")):
        curve_ax.plot(rows["epoch"].astype(int), rows[column].astype(float), color=colour, marker=".", label=name)
    curve_ax.set_xlabel("epoch")
    curve_ax.set_ylabel(first.split("_", 1)[1])
    curve_ax.set_title(f"the best trial {best} on both sets")
    curve_ax.xaxis.get_major_locator().set_params(integer=True)
    curve_ax.legend(loc="best")
    return png(fig)


def _label_rgb(label: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """(H, W) class map -> (H, W, 3): background white, classes in the preview's colours."""
    rgb = np.full((*label.shape, 3), 255, np.uint8)
    for cls, colour in COLOURS.items():
        rgb[label == cls] = colour
    return rgb


def prediction(
    image: npt.NDArray[np.uint8],
    truth: npt.NDArray[np.uint8],
    classes: npt.NDArray[np.uint8],
    curves: Sequence[tuple[int, int, float]],
    title: str,
) -> bytes:
    """Image, true label, predicted classes and the extracted curve points over the image.

    Shape: image, truth, classes (H, W) uint8 of one window of a raster.
    """
    h, w = image.shape
    stacked = w >= 3 * h  # wide rasters: four rows; taller windows: a 2 x 2 grid
    panel_h = (WIDTH_IN if stacked else WIDTH_IN / 2) * h / w
    fig = new_figure(min(16.0, 0.5 + (4 if stacked else 2) * (panel_h + 0.3)))
    axes = fig.subplots(4, 1) if stacked else fig.subplots(2, 2).ravel()
    fig.suptitle(title, fontsize=9)
    grey = {"cmap": "gray", "vmin": 0, "vmax": 255, "interpolation": "antialiased"}
    axes[0].imshow(image, **grey)
    axes[0].set_title("image", loc="left", fontsize=8)
    axes[1].imshow(_label_rgb(truth))
    axes[1].set_title(f"truth (yellow: ignored, label {IGNORE_INDEX})", loc="left", fontsize=8)
    axes[2].imshow(_label_rgb(classes))
    axes[2].set_title("prediction", loc="left", fontsize=8)
    axes[3].imshow(image, cmap="gray", vmin=-255, vmax=255, interpolation="antialiased")  # faded: points stand out
    if curves:
        pts = np.asarray(curves, dtype=np.float64)  # (M, 3): column, class, row
        for cls in sorted({int(c) for c in pts[:, 1]}):
            sel = pts[:, 1] == cls
            colour = np.asarray(COLOURS.get(cls, (0, 160, 0))) / 255.0
            axes[3].scatter(pts[sel, 0], pts[sel, 2], s=1.5, color=colour, marker=".", linewidths=0)
    axes[3].set_title(f"extracted curve points ({len(curves)})", loc="left", fontsize=8)
    for ax in axes:
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    return png(fig)
