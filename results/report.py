"""One self-contained HTML page of what a study found: ``python -m results.report STUDY_DIR [--out FILE]``.

Per task: learning curves with ASHA's rungs and cuts, best-so-far against trials and device-hours, parameter
importance with slice plots, the cost ledger, the trials that restarted (their nodes and why), and the best
trial's predictions on validation rasters. Above
them the plan, the status counts and the commands to resume the study and rebuild this page. Every image is
embedded (PNG, base64), nothing is fetched. The page is written atomically (default
``STUDY_DIR/report.html``) and can be rebuilt at any time, also while the study runs: missing tables and
trials still running are shown as such.

``write_report`` is the library entry; it never imports Ray, and imports torch only for the predictions.
Exit status 0, or 2 with one line for a missing, foreign or damaged study directory or an unwritable ``--out``.
"""

from __future__ import annotations

import base64
import html
import math
import os
import secrets
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa

from datamodules.cli import Exit, Parser, UsageError
from models.metric_names import VAL_METRICS, first_set, mode_of, second_set
from results import figures, history, importance, las_scores
from results.plan import STUDY_FILE, StudyConfig
from results.query import TableError, best_trials, load_epochs, load_trials, tables_dir
from results.schema import (
    EPOCHS_FILE,
    EPOCHS_SCHEMA,
    FINAL_STATUSES,
    FINISHED_STATUSES,
    STATUSES,
    TRIALS_FILE,
    TRIALS_FIXED_SCHEMA,
)
from results.store import checkpoint_location, child, fetched, is_uri, local_view, shown, write_bytes

REPORT_FILE = "report.html"
N_PREDICTIONS = 3  # validation rasters shown per task
# At most this many columns of a raster (its middle) are segmented and shown, about one pixel per screen pixel:
# a wide, low raster fills the page width in four stacked panels, a tall one half of it in a 2 x 2 grid.
WINDOW_WIDE, WINDOW_TALL = 1024, 512
TOP_PARAMS = 6  # slice plots for at most this many parameters
IMPORTANT = 0.05  # a parameter with at least this share of the importance gets a slice plot
LEDGER_COLUMNS = (
    "device-hours spent",
    "saved by early stopping",
    "share saved",
    "epochs run / budget",
    "median images/s",
    "mean padded share",
)


class ReportError(UsageError, ValueError):
    """A study directory the report cannot read (missing, foreign, damaged), or an output it cannot write."""


@dataclass
class StudyView:
    """A study as the report reads it: its saved plan and whatever tables exist yet."""

    study_dir: Path
    config: StudyConfig
    trials: pd.DataFrame
    epochs: pd.DataFrame
    trials_written: bool
    epochs_written: bool

    @property
    def mode(self) -> str:
        return mode_of(self.config.metric)

    def rungs(self) -> list[int]:
        cfg = self.config
        return asha_rungs(cfg.grace_period, cfg.reduction_factor, cfg.epochs)


def asha_rungs(grace_period: int, reduction_factor: int, budget: int) -> list[int]:
    """ASHA's rungs: grace period x reduction factor^k up to the epoch budget (the grace period capped at the
    budget, as the study's scheduler does)."""
    rungs = [max(1, min(grace_period, budget))]
    while reduction_factor > 1 and rungs[-1] * reduction_factor <= budget:
        rungs.append(rungs[-1] * reduction_factor)
    return rungs


def _table(
    study_dir: Path, name: str, loader: Callable[[Path], pd.DataFrame], schema: pa.Schema
) -> tuple[pd.DataFrame, bool]:
    if not (tables_dir(study_dir) / name).is_file():  # not written yet: the study has just started
        return schema.empty_table().to_pandas(), False
    try:
        return loader(study_dir), True
    except TableError as exc:
        raise ReportError(str(exc)) from None


def load_study(study_dir: Path | str) -> StudyView:
    """The plan (``study.json``) and the tables of a study directory; ReportError if it is not one."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise ReportError(f"no such study directory: {study_dir.absolute()}")
    marker = study_dir / STUDY_FILE
    if not marker.is_file():
        raise ReportError(f"{study_dir.absolute()} is not a study directory (no {STUDY_FILE}); give runs/<study name>")
    try:
        config = StudyConfig.from_json(marker.read_text())
        mode_of(config.metric)
    except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
        raise ReportError(f"{marker.absolute()} is damaged or from another version ({exc})") from None
    trials, trials_written = _table(study_dir, TRIALS_FILE, load_trials, TRIALS_FIXED_SCHEMA)
    epochs, epochs_written = _table(study_dir, EPOCHS_FILE, load_epochs, EPOCHS_SCHEMA)
    return StudyView(study_dir, config, trials, epochs, trials_written, epochs_written)


# -- HTML pieces --


def _e(value: object) -> str:
    return html.escape(str(value))


def _fmt(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _png_size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])  # the IHDR chunk: width, height


def _figure(data: bytes, alt: str, caption: str) -> str:
    w, h = _png_size(data)
    src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img src="{src}" width="{w}" height="{h}" alt="{_e(alt)}"><figcaption>{caption}</figcaption></figure>'
    )


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _html_table(header: Sequence[str] | None, rows: Sequence[Sequence[object]]) -> str:
    head = "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_e(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{_e(anchor)}"><h3>{_e(title)}</h3>{body}</section>'


# -- the study header --


def _status_rows(view: StudyView) -> list[list[object]]:
    rows = []
    for task in view.config.tasks:
        statuses = view.trials.loc[view.trials["task"] == task, "status"].astype(str)
        counts = [int((statuses == s).sum()) for s in STATUSES]
        rows.append([task, *counts, max(0, view.config.num_samples - len(statuses)), view.config.num_samples])
    return rows


def _ended(view: StudyView) -> bool:
    ended = view.trials["status"].astype(str).isin(FINAL_STATUSES)
    return all(
        int((ended & (view.trials["task"] == task)).sum()) >= view.config.num_samples for task in view.config.tasks
    )


def _location(view: StudyView) -> Path | str:
    """The study as the page names it: a study in object storage by its URI, not the local view it is built from."""
    return view.config.study_location if view.config.remote else view.study_dir.absolute()


def _header(view: StudyView, out: Path) -> str:
    cfg = view.config
    study_dir = _location(view)
    storage: Path | str = cfg.location if cfg.remote else view.study_dir.absolute().parent
    state = "finished" if _ended(view) else "in progress (or interrupted)"
    presets = cfg.task_presets
    plan: list[Sequence[object]] = [
        ["preset", cfg.preset],
        ["tasks", ", ".join(cfg.tasks)],
        ["trials per task", cfg.num_samples],
        ["epoch budget", cfg.epochs],
        ["objective", f"{cfg.metric} ({view.mode})"],
        [
            "ASHA",
            f"grace period {cfg.grace_period}, reduction factor {cfg.reduction_factor}: "
            f"rungs at epochs {', '.join(map(str, view.rungs()))}",
        ],
        [
            "per trial",
            f"{cfg.gpus_per_trial:g} GPU, {cfg.cpus_per_trial:g} CPU; {cfg.max_concurrent or 'as many as fit'} at once",
        ],
        ["seed", cfg.seed],
        *(
            [
                f"{task} data",
                (
                    f"at most {p.n_instances} rasters of {cfg.data}"
                    if cfg.data
                    else f"{p.n_instances} rasters at scale {p.scale:g}"
                )
                + f", batch {p.batch_size}; "
                f"base channels {', '.join(map(str, p.base_channels))}, depth {p.depths[0]}-{p.depths[1]}",
            ]
            for task, p in presets.items()
            if task in cfg.tasks
        ),
        *([["second validation set", f"{cfg.val_data} (its metrics: val2_*)"]] if cfg.val_data else []),
    ]
    written = []
    if not view.trials_written:
        written.append("the trials table is not written yet")
    if not view.epochs_written:
        written.append("no epoch has been reported yet")
    best = []
    for task in cfg.tasks:
        rows = _finished(view.trials[view.trials["task"] == task])
        if len(rows):
            top = _best_row(rows, view.mode)
            best.append(
                f"<li><b>{_e(task)}</b>: trial <code>{_e(top['trial_id'])}</code> ({_e(top['status'])}), "
                f"{_e(cfg.metric)} = {_fmt(float(top['objective_best']))} at epoch {_e(top['best_epoch'])}</li>"
            )
        else:
            best.append(f"<li><b>{_e(task)}</b>: no finished trial yet</li>")
    resume = f"python -m study.run --resume --name {cfg.name} --storage {storage}"
    rebuild = f"python -m results.report {study_dir}"
    if out.absolute() != (view.study_dir / REPORT_FILE).absolute():
        rebuild += f" --out {out.absolute()}"
    commands = [
        ("continue the study (if it was interrupted)", resume),
        ("rebuild this page", rebuild),
        ("the tables in the terminal", f"python -m results.show {study_dir}"),
        ("TensorBoard on every trial", f"tensorboard --logdir {study_dir}"),
        (
            "apply the best model to an image",
            f"python -m study.predict --best {study_dir} --task {cfg.tasks[0]} --image scan.png",
        ),
    ]
    cmd_html = "".join(f"<dt>{_e(what)}</dt><dd><code>{_e(cmd)}</code></dd>" for what, cmd in commands)
    status_header = ["task", *(s.replace("_", " ") for s in STATUSES), "not started", "planned"]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f'<section id="study"><h1>Study {_e(cfg.name)}</h1>'
        f'<p class="meta">{_e(study_dir)} &middot; {state} &middot; page built {generated}'
        + (f" &middot; {_e('; '.join(written))}" if written else "")
        + "</p>"
        f'<div class="cols"><div><h2>Plan</h2>{_html_table(None, plan)}</div>'
        f"<div><h2>Trials</h2>{_html_table(status_header, _status_rows(view))}"
        f"<h2>Best so far</h2><ul>{''.join(best)}</ul></div></div>"
        f"<h2>Commands</h2><dl>{cmd_html}</dl></section>"
    )


# -- one task --


def _finished(trials: pd.DataFrame) -> pd.DataFrame:
    ok = trials["status"].astype(str).isin(FINISHED_STATUSES) & trials["objective_best"].notna()
    return trials[ok]


def _best_row(trials: pd.DataFrame, mode: str) -> pd.Series:
    ordered = trials.sort_values(["objective_best", "trial_id"], ascending=[mode == "min", True])
    return ordered.iloc[0]


def _curves_section(view: StudyView, task: str, trials: pd.DataFrame, epochs: pd.DataFrame) -> str:
    cfg = view.config
    if epochs.empty:
        return _section(f"{task}-curves", "Learning curves and ASHA", _note("No epoch reported yet."))
    png = figures.learning_curves(epochs, trials, cfg.metric, view.rungs(), cfg.epochs)
    cut = trials[trials["status"] == "stopped_early"]
    by_rung = cut["epochs_completed"].astype(int).value_counts().sort_index()
    cuts = ", ".join(f"{n} after epoch {e}" for e, n in by_rung.items()) or "none yet"
    caption = (
        f"{_e(cfg.metric)} ({view.mode}) of every trial per epoch, coloured by status. Dotted lines: ASHA's rungs "
        f"(grace period {cfg.grace_period} &times; reduction factor {cfg.reduction_factor}<sup>k</sup>), where "
        f"it keeps the best 1/{cfg.reduction_factor} and stops the rest. Stopped by ASHA: {_e(cuts)}."
    )
    return _section(f"{task}-curves", "Learning curves and ASHA", _figure(png, f"{task} learning curves", caption))


def _at_best_epoch(trials: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """Each finished trial's epoch row at its best epoch (the checkpoint kept), with its status."""
    done = _finished(trials)[["trial_id", "status", "best_epoch"]].dropna(subset=["best_epoch"])
    done = done.assign(epoch=done["best_epoch"].astype("int64")).drop(columns="best_epoch")
    rows = epochs.drop(columns=["status"], errors="ignore").assign(epoch=epochs["epoch"].astype("int64"))
    return rows.merge(done, on=["trial_id", "epoch"])


def _two_sets_section(view: StudyView, task: str, trials: pd.DataFrame, epochs: pd.DataFrame) -> str:
    """The first validation set beside the second (``--val-data``): the gap per trial and for the best one."""
    cfg = view.config
    first = first_set(cfg.metric)
    second = second_set(first)
    seen = second in epochs.columns and bool(epochs[second].notna().any())
    if cfg.val_data is None and not seen:
        return ""
    anchor, title = f"{task}-two-sets", "The two validation sets"
    at_best = _at_best_epoch(trials, epochs)
    if not seen or at_best.empty or not at_best[second].notna().any():
        return _section(anchor, title, _note("No finished trial has been validated on the second set yet."))
    top = _best_row(_finished(trials), view.mode)
    best = at_best[at_best["trial_id"] == top["trial_id"]].iloc[0]
    summary = _html_table(
        ["metric", "first set", "second set", "gap (second - first)"],
        [[name, best[name], best[second_set(name)], best[second_set(name)] - best[name]] for name in VAL_METRICS],
    )
    ordered = at_best.sort_values([first, "trial_id"], ascending=[mode_of(first) == "min", True])
    per_trial = _html_table(
        ["trial", "status", "best epoch", first, second, "gap"],
        [
            [r["trial_id"], r["status"], r["epoch"], r[first], r[second], r[second] - r[first]]
            for _, r in ordered.iterrows()
        ],
    )
    png = figures.two_sets(at_best, epochs[epochs["trial_id"] == top["trial_id"]], first, second, str(top["trial_id"]))
    caption = (
        f"Left: every finished trial's {_e(first)} on the first validation set against {_e(second)} on the second "
        f"({_e(cfg.val_data or 'the second set')}), each at the trial's best epoch by {_e(cfg.metric)}; on the "
        "dashed line a trial scores the same on both. Right: the best trial's learning curve on both sets."
    )
    return _section(
        anchor,
        title,
        _note(
            f"The best trial <code>{_e(top['trial_id'])}</code> at its best epoch {_e(best['epoch'])}, every "
            "validation metric on both sets:"
        )
        + summary
        + _note(f"Every finished trial at its best epoch, by {_e(first)} on the first set:")
        + per_trial
        + _figure(png, f"{task} first against second validation set", caption),
    )


def _devices(view: StudyView, trials: pd.DataFrame) -> dict[str, float]:
    # What a trial held, as the tables count it: its GPUs, or its CPUs on a CPU-only study.
    default = view.config.gpus_per_trial or view.config.cpus_per_trial
    held = {str(t): float(d) for t, d in zip(trials["trial_id"], trials["devices"]) if not pd.isna(d)}
    ids = view.epochs["trial_id"].astype(str).unique()
    return {str(t): held.get(str(t), default) for t in ids} | held


def _progress_section(view: StudyView, task: str, trials: pd.DataFrame, epochs: pd.DataFrame) -> str:
    if epochs.empty and trials.empty:
        return _section(f"{task}-progress", "Best so far", _note("Nothing reported yet."))
    png = figures.best_so_far(trials, epochs, _devices(view, trials), view.config.metric, view.mode)
    caption = (
        "Left: each trial's best objective (dots, by status) in the order the trials started, and the best so "
        "far. Right: the best value reported so far against the device-hours the trials' epochs had used by "
        "then. Errored trials are left out."
    )
    return _section(f"{task}-progress", "Best so far", _figure(png, f"{task} best so far", caption))


def _importance_section(view: StudyView, task: str, trials: pd.DataFrame) -> str:
    done = _finished(trials)
    title = "Parameter importance"
    if done.empty:
        return _section(f"{task}-importance", title, _note("No finished trial yet."))
    counted = importance.finished(trials)
    dists = importance.domains(counted)
    save = f"{importance.SAVE_COMMAND} {_location(view)}"
    try:
        kept = importance.load(view.study_dir)
    except ValueError as exc:
        kept, missing = None, f"{_e(exc)}; <code>{_e(save)}</code> computes and saves them again."
    else:
        missing = (
            "This study was written before studies kept their parameter importances; "
            f"<code>{_e(save)}</code> computes and saves them."
        )
    rows = kept[kept["task"] == task] if kept is not None else None
    importances = dict(zip(rows["param"], rows["importance"].astype(float))) if rows is not None else {}
    parts = []
    if rows is None:
        parts.append(_note(missing))
        ranked = list(dists)[:TOP_PARAMS]
    elif importances and sum(importances.values()) > 0:
        computed = int(rows["trials"].iloc[0])
        since = (
            f" The tables now hold {len(counted)}; <code>{_e(save)}</code> computes them again."
            if computed != len(counted)
            else ""
        )
        caption = (
            f"Optuna's PED-ANOVA importance of each parameter for reaching the top of {_e(view.config.metric)}, "
            f"from {computed} finished trials (the tables' typed param_* columns; a trial stopped by "
            f"ASHA counts with its best value before the cut). With few trials it is a rough guide.{since}"
        )
        parts.append(_figure(figures.importance_bars(importances), f"{task} parameter importance", caption))
        ranked = [p for p, v in importances.items() if v >= IMPORTANT][:TOP_PARAMS] or list(importances)[:3]
    else:
        parts.append(
            _note(
                f"Importance needs at least two finished trials with different values of the objective and a "
                f"parameter that varied; there are {len(done)} finished trials."
            )
        )
        ranked = list(dists)[:TOP_PARAMS]
    if ranked:
        log = {name: d.log for name, d in dists.items()}
        png = figures.slices(done, ranked, log, view.config.metric)
        caption = (
            f"Slice plots: each finished trial's best {_e(view.config.metric)} against "
            + ("each important parameter" if importances else "each parameter that varied")
            + " (categorical values jittered sideways; colour = status)."
        )
        parts.append(_figure(png, f"{task} slice plots", caption))
    return _section(f"{task}-importance", title, "".join(parts))


def _cost_section(task: str, trials: pd.DataFrame, epochs: pd.DataFrame) -> str:
    devices = trials["devices"].astype(float).fillna(1.0)
    spent = float(trials["device_seconds"].astype(float).fillna(0.0).sum())
    saved = float((trials["seconds_saved"].astype(float).fillna(0.0) * devices).sum())
    run = int(trials["epochs_completed"].astype("Int64").fillna(0).sum())
    budget = int(trials["epoch_budget"].astype("Int64").fillna(0).sum())
    ips = epochs["images_per_second"].astype(float)
    pad = epochs["pad_fraction"].astype(float)
    ledger = _html_table(
        LEDGER_COLUMNS,
        [
            [
                f"{spent / 3600:.3g}",
                f"{saved / 3600:.3g}",
                f"{saved / (spent + saved):.0%}" if spent + saved > 0 else "-",
                f"{run} / {budget}",
                _fmt(float(ips.median()) if ips.notna().any() else None, 3),
                f"{float(pad.mean()):.1%}" if pad.notna().any() else "-",
            ]
        ],
    )
    body = ledger
    if not (trials.empty and epochs.empty):
        caption = (
            "Left: device-hours spent per trial status (a device is a GPU, or a CPU on a CPU-only study) and "
            "saved by early stopping (epochs not run &times; the trial's mean epoch time). Middle and right: "
            "training throughput and the padded share of pixels per epoch, per trial."
        )
        body += _figure(figures.cost(trials, epochs), f"{task} cost ledger", caption)
    return _section(f"{task}-cost", "Cost ledger", body)


def _restarts_section(task: str, trials: pd.DataFrame) -> str:
    rows = history.rows(trials)
    return _section(f"{task}-restarts", "Restarts and nodes", _html_table(history.HEADER, rows)) if rows else ""


def _errors_section(task: str, trials: pd.DataFrame) -> str:
    bad = trials[trials["status"] == "error"]
    if bad.empty:
        return ""
    rows = [[r.trial_id, r.epochs_completed, r.error, r.error_file] for r in bad.itertuples()]
    table = _html_table(["trial", "epochs run", "error", "error file"], rows)
    return _section(f"{task}-errors", "Errored trials", table)


def _instances(indices: range) -> str:
    first, last = indices.start, indices.stop - 1
    return f"instance {first}" if first == last else f"instances {first}-{last}"


def _shown(n_val: int) -> str:
    if n_val <= N_PREDICTIONS:
        return "all of them are shown" if n_val > 1 else "it is shown"
    return f"the first {N_PREDICTIONS} are shown"


def _window(height: int, width: int) -> slice:
    window = WINDOW_WIDE if 3 * height <= WINDOW_WIDE else WINDOW_TALL
    if width <= window:
        return slice(0, width)
    start = (width - window) // 2
    return slice(start, start + window)


def _predictions_section(view: StudyView, task: str, device: str) -> str:
    title = "Predictions of the best trial"
    anchor = f"{task}-predictions"
    if not view.trials_written:
        return _section(anchor, title, _note("No finished trial yet."))
    try:
        best = best_trials(view.study_dir)
    except (TableError, ValueError) as exc:
        return _section(anchor, title, _note(_e(f"Cannot rank the trials: {exc}")))
    best = best[best["task"] == task]
    if best.empty:
        return _section(anchor, title, _note("No finished trial yet."))
    row = best.iloc[0]
    if pd.isna(row["checkpoint_path"]):
        return _section(anchor, title, _note(f"The best trial {_e(row['trial_id'])} has no checkpoint recorded."))
    from datamodules.datasets import RasterDataset
    from models.inference import PredictError, load_checkpoint, pick_device, segment  # torch: only for pictures

    try:
        device = pick_device(device)
    except PredictError as exc:
        raise ReportError(str(exc)) from None
    recorded = str(row["checkpoint_path"])
    if view.config.remote:
        recorded = checkpoint_location(view.config.study_location, recorded)
    try:
        with fetched(recorded) as local:
            ckpt = load_checkpoint(str(local), device)
    except FileNotFoundError as exc:
        return _section(anchor, title, _note(_e(f"Cannot load the best trial's checkpoint: {exc}")))
    except PredictError as exc:
        return _section(anchor, title, _note(_e(f"Cannot load the best trial's checkpoint: {exc}")))
    if ckpt.task != task:
        return _section(anchor, title, _note(_e(f"{ckpt.path} holds a {ckpt.task} model, not {task}.")))
    cfg = view.config
    try:
        data = cfg.task_presets[task].datamodule(task, seed=cfg.seed, source=cfg.data_source())
    except ValueError as exc:  # a dataset folder that has changed or gone since the study ran
        return _section(anchor, title, _note(_e(f"Cannot read the study's data: {exc}")))
    first = _instances(data.val_set.indices) if isinstance(data.val_set, RasterDataset) else f"{cfg.data}"
    sets = [("validation", data.val_set, first)]
    if data.val2_set is not None:
        sets.append(("second validation", data.val2_set, f"{cfg.val_data}"))
    parts = [
        _note(
            f"Trial <code>{_e(row['trial_id'])}</code>, checkpoint <code>{_e(ckpt.path)}</code> (the epoch with "
            f"the best {_e(cfg.metric)} that Ray kept), segmenting on {_e(device)}."
        )
    ]
    for which, dataset, described in sets:
        parts.append(_note(f"The {which} set is {_e(described)}; {_shown(len(dataset))}."))
        for i in range(min(N_PREDICTIONS, len(dataset))):
            sample = dataset[i]
            name = dataset.name(i)
            h, w = sample.image.shape
            cols = _window(h, w)
            image, truth = sample.image[:, cols], sample.label[:, cols]
            pred = segment(ckpt, image)
            part = f"{w} x {h} px"
            if cols.stop - cols.start < w:
                part = f"columns {cols.start}-{cols.stop - 1} of {part}"
            png = figures.prediction(image, truth, pred.classes, pred.curves, f"{which} {name} ({part})")
            caption = (
                f"{which.capitalize()} {_e(name)}, {part}: the image, its true label, the predicted classes and "
                "the extracted curve points (per column, the centre of each run of a curve class) drawn over the image."
            )
            parts.append(_figure(png, f"{task} prediction on {which} {name}", caption))
    return _section(anchor, title, "".join(parts))


def _task(view: StudyView, task: str, device: str) -> str:
    trials = view.trials[view.trials["task"] == task]
    epochs = view.epochs[view.epochs["task"] == task]
    statuses = trials["status"].astype(str).value_counts()
    summary = ", ".join(f"{n} {str(s).replace('_', ' ')}" for s, n in statuses.items()) or "no trial started yet"
    head = (
        f'<h2 id="{_e(task)}">Task {_e(task)}</h2>'
        f"<p>{len(trials)} of {view.config.num_samples} trials: {_e(summary)}.</p>"
    )
    return (
        f'<div class="task">{head}'
        + _curves_section(view, task, trials, epochs)
        + _progress_section(view, task, trials, epochs)
        + _two_sets_section(view, task, trials, epochs)
        + _importance_section(view, task, trials)
        + _cost_section(task, trials, epochs)
        + _errors_section(task, trials)
        + _restarts_section(task, trials)
        + _predictions_section(view, task, device)
        + las_scores.section(view.study_dir, task)
        + "</div>"
    )


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; margin: 0 auto;
       max-width: 1060px; padding: 16px 24px 48px; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 18px; margin: 22px 0 8px; }
h3 { font-size: 15px; margin: 18px 0 6px; } .meta { color: #555; margin-top: 0; }
.task { border-top: 2px solid #ccc; margin-top: 28px; }
.cols { display: flex; gap: 32px; flex-wrap: wrap; } .cols > div { flex: 1 1 440px; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ddd; padding: 3px 8px; }
th { background: #f3f3f3; text-align: left; } td { vertical-align: top; }
figure { margin: 10px 0 18px; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #444; font-size: 12.5px; margin-top: 4px; } .note { color: #666; font-style: italic; }
code { background: #f4f4f4; padding: 1px 4px; border-radius: 3px; font-size: 12.5px; }
dt { margin-top: 6px; color: #444; } dd { margin-left: 16px; } nav a { margin-right: 14px; }
"""


def render_html(view: StudyView, out: Path, device: str = "cpu") -> str:
    """The whole page of a study."""
    cfg = view.config
    nav = "".join(f'<a href="#{_e(t)}">{_e(t)}</a>' for t in cfg.tasks)
    body = _header(view, out) + f"<nav>Tasks: {nav}</nav>" + "".join(_task(view, t, device) for t in cfg.tasks)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No network: images are data URIs, and nothing else may load.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">"
        f"<title>Study {_e(cfg.name)}: report</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_report(study_dir: Path | str, out: Path | str | None = None, *, device: str = "cpu") -> Path:
    """Build the report of ``study_dir`` and write it atomically to ``out`` (default STUDY_DIR/report.html).

    Args:
        study_dir: the study directory, ``<storage>/<study name>`` (holding ``study.json`` and ``tables/``); a
            study that has only just started, with no table written yet, still gets a page.
        out: the HTML file to write; None writes ``report.html`` in ``study_dir``. An existing file is replaced
            whole (temporary file, fsync, rename).
        device: where the best trials' checkpoints segment the validation rasters: "cpu", "cuda", "cuda:N", or
            "auto" (the GPU if torch sees one).

    Returns:
        The path written.

    Raises:
        ReportError: not a study directory, a damaged ``study.json`` or table, ``out`` not writable, or a
            ``device`` torch does not have.
    """
    view = load_study(study_dir)
    out = Path(out) if out is not None else view.study_dir / REPORT_FILE
    page = render_html(view, out, device)
    try:
        _write_atomic(out, page)
    except OSError as exc:
        raise ReportError(f"cannot write {out.absolute()}: {exc.strerror or exc}") from None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="python -m results.report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "study_dir", help="the study directory, <storage>/<study name>: a path or an object store URI (s3://...)"
    )
    parser.add_argument("--out", type=Path, help=f"the HTML file to write (default: STUDY_DIR/{REPORT_FILE})")
    parser.add_argument("--device", default="cpu", help="where the predictions run: cpu (default), cuda, auto")
    try:
        args = parser.parse_args(argv)
        device = args.device
        if device != "cpu":  # torch is imported for the predictions anyway
            from models.inference import pick_device

            device = pick_device(device)  # PredictError is a UsageError: one line, exit 2
        started = time.perf_counter()
        if is_uri(args.study_dir):
            return _report_remote(args.study_dir, args.out, device, started)
        path = write_report(args.study_dir, args.out, device=device)
    except UsageError as exc:  # ReportError, or a mistake argparse found
        print(f"report: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    size = path.stat().st_size / 1e6
    print(f"wrote {path} ({size:.1f} MB, {time.perf_counter() - started:.1f} s)")
    return Exit.OK


def _report_remote(location: str, out: Path | None, device: str, started: float) -> int:
    """The report of a study in object storage, built on a local view of it; written beside its tables in the
    store (or to ``--out``)."""
    try:
        with local_view(location) as view:
            if not (view / STUDY_FILE).is_file():
                raise ReportError(f"{shown(location)} is not a study (no {STUDY_FILE}); give STORAGE_URI/STUDY_NAME")
            path = write_report(view, out, device=device)
            size = path.stat().st_size / 1e6
            target = str(path) if out is not None else shown(child(location, REPORT_FILE))
            if out is None:
                write_bytes(child(location, REPORT_FILE), path.read_bytes())
    except OSError as exc:
        raise ReportError(f"{shown(location)}: {str(exc).strip().splitlines()[0]}") from None
    print(f"wrote {target} ({size:.1f} MB, {time.perf_counter() - started:.1f} s)")
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
