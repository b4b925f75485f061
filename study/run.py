"""``python -m study.run``: run (or resume) a hyperparameter study of the well-log segmenters.

With no flags it runs a real, small study on this machine's CPUs (the ``smoke`` preset) in minutes.
Exit codes: 0 all trials fine; 1 some trials errored; 2 a user mistake; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import stat
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from models.metric_names import DEFAULT_OBJECTIVE, OBJECTIVES
from study.config import PRESETS, StudyConfig, expand_tasks

STUDY_FILE = "study.json"
FINAL_STATUSES = ("completed", "stopped_early", "error")
EXIT_OK, EXIT_TRIAL_ERRORS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Flags that define the plan of a study; with --resume the saved plan is used and these may not change it.
PLAN_FLAGS = (
    "task", "preset", "num_samples", "epochs", "max_concurrent", "gpus_per_trial",
    "cpus_per_trial", "seed", "metric", "instances", "scale",
)  # fmt: skip


class UsageError(Exception):
    """A user mistake: reported as one line, exit status 2, before Ray starts."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(f"{message} (see --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m study.run", description=__doc__.splitlines()[0])
    g = p.add_argument_group("study")
    g.add_argument("--task", choices=("binary", "multiclass", "both"), help="which task(s) to tune (default: both)")
    g.add_argument(
        "--preset",
        choices=("auto", *PRESETS),
        help="run shape: 'full' (reference sizes, 1 GPU per trial), 'smoke' (CPU-sized); "
        "'auto' (default) picks full where Ray sees GPUs, else smoke",
    )
    g.add_argument("--num-samples", type=_positive_int, help="trials per task (default: from the preset)")
    g.add_argument("--epochs", type=_positive_int, help="epoch budget per trial (default: from the preset)")
    g.add_argument(
        "--metric",
        help=f"objective to optimise, one of: {', '.join(OBJECTIVES)} (default: {DEFAULT_OBJECTIVE})",
    )
    g.add_argument("--instances", type=_positive_int, help="rasters per task, train + validation (default: preset)")
    g.add_argument(
        "--scale",
        type=_non_negative_float,
        help="raster scale, 1.0 = full size 3,200-12,800 x 480-640 (default: preset)",
    )
    g.add_argument("--seed", type=int, help="seed of the data and the Optuna sampler (default: 0)")
    r = p.add_argument_group("resources")
    r.add_argument("--max-concurrent", type=_positive_int, help="trials at once (default: what Ray's resources allow)")
    r.add_argument(
        "--gpus-per-trial", type=_non_negative_float, help="GPUs per trial, may be fractional (default: preset)"
    )
    r.add_argument(
        "--cpus-per-trial",
        type=_non_negative_float,
        help="CPUs per trial; DataLoader workers = CPUs - 1 (default: preset)",
    )
    s = p.add_argument_group("storage")
    s.add_argument("--name", help="study name (default: study-<UTC timestamp>); an existing name needs --resume")
    s.add_argument(
        "--storage",
        default="./runs",
        help="where studies live: a path, or a file:// URI; shared by all nodes (default: ./runs)",
    )
    s.add_argument("--resume", action="store_true", help="continue the interrupted study --name, with its saved plan")
    s.add_argument(
        "--restart-errored",
        action="store_true",
        help="with --resume: restart errored trials from scratch instead of resuming them from their checkpoints",
    )
    c = p.add_argument_group("cluster and dashboard")
    c.add_argument(
        "--address", help="join an existing Ray cluster (e.g. ray://head:10001 or auto) instead of starting one"
    )
    c.add_argument("--no-dashboard", action="store_true", help="start the local Ray instance without its dashboard")
    c.add_argument(
        "--dashboard-host",
        default="127.0.0.1",
        help="interface the dashboard listens on (default: 127.0.0.1, loopback only)",
    )
    return p


def _storage_path(storage: str) -> Path:
    parsed = urlparse(storage)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme else storage).expanduser()
        if path.exists() and not path.is_dir():
            raise UsageError(f"--storage {storage!r} is a file, not a directory; give a directory path")
        return path.resolve()
    raise UsageError(
        f"--storage scheme {parsed.scheme!r} is not supported yet; mount the storage on every node and give its path"
    )


def _check_not_writable_by_others(study_dir: Path) -> None:
    """Restore unpickles files from the study: refuse one that other users could have planted files in."""
    uid = os.getuid()
    for d in [study_dir, *(p for p in study_dir.iterdir() if p.is_dir())]:
        st = d.stat()
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or st.st_uid != uid:
            raise UsageError(
                f"refusing to resume from {d}: it is writable by other users or not yours "
                f"(resume unpickles files from it); fix with: chmod -R go-w {study_dir}"
            )


def _load_study(study_dir: Path) -> StudyConfig:
    if not study_dir.is_dir():
        raise UsageError(f"no study at {study_dir}; check --name and --storage (start one without --resume)")
    marker = study_dir / STUDY_FILE
    if not marker.is_file():
        raise UsageError(f"{study_dir} is not a study directory (no {STUDY_FILE}); check --name and --storage")
    _check_not_writable_by_others(study_dir)
    try:
        cfg = StudyConfig.from_json(marker.read_text()).with_resume()
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"{marker} is damaged or from another version ({exc}); start a new study") from None
    from results.query import TableError, load_epochs, load_trials

    try:  # a damaged table must stop the resume before Ray starts, not inside Tune's callback
        if (cfg.tables_dir / "trials.parquet").exists():
            load_trials(study_dir)
        if (cfg.tables_dir / "epochs.parquet").exists():
            load_epochs(study_dir)
    except TableError as exc:
        raise UsageError(f"{exc}; move the damaged file aside to resume without its rows") from None
    return cfg


def validate(args: argparse.Namespace) -> argparse.Namespace:
    """Checks every flag; raises UsageError (one line). Nothing is written and Ray is not started."""
    if args.metric is not None and args.metric not in OBJECTIVES:
        raise UsageError(f"unknown --metric {args.metric!r}; choose one of: {', '.join(OBJECTIVES)}")
    if args.scale is not None and not 0.02 <= args.scale <= 1.0:
        raise UsageError(f"--scale must be in [0.02, 1.0], got {args.scale}")
    if args.instances is not None and args.instances < 2:
        raise UsageError("--instances must be >= 2 (one training and one validation raster)")
    if args.cpus_per_trial is not None and args.cpus_per_trial == 0:
        raise UsageError("--cpus-per-trial must be > 0 (a trial needs a CPU to run on)")
    if args.name is not None and not NAME_RE.match(args.name):
        raise UsageError(f"--name {args.name!r} must be letters, digits, '.', '_' or '-' (max 128)")
    args.storage_path = _storage_path(args.storage)
    if args.restart_errored and not args.resume:
        raise UsageError("--restart-errored only applies with --resume")
    if args.resume:
        if args.name is None:
            raise UsageError("--resume needs --name of the study to continue")
        given = [f"--{f.replace('_', '-')}" for f in PLAN_FLAGS if getattr(args, f) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} cannot change a study being resumed; drop them (its plan is saved)")
        args.loaded = _load_study(args.storage_path / args.name)
    else:
        parent = next(p for p in [args.storage_path, *args.storage_path.parents] if p.exists())
        if not os.access(parent, os.W_OK):
            raise UsageError(f"--storage {args.storage_path} is not writable by you; choose another directory")
        args.name = args.name or datetime.now(timezone.utc).strftime("study-%Y%m%d-%H%M%S")
        if (args.storage_path / args.name).exists():
            raise UsageError(
                f"study {args.name!r} already exists in {args.storage_path}; "
                "use --resume to continue it, or choose another --name"
            )
    return args


def pick(flag, default):
    """A flag's value where given, else the preset's."""
    return default if flag is None else flag


def resolve(args: argparse.Namespace, gpus_seen: bool) -> StudyConfig:
    """Preset values, then the flags over them."""
    name = args.preset or "auto"
    preset = PRESETS["full" if gpus_seen else "smoke"] if name == "auto" else PRESETS[name]
    if name == "auto":
        print(f"preset auto -> {preset.name}: Ray sees {'GPUs' if gpus_seen else 'no GPU'}")
    return StudyConfig(
        name=args.name,
        storage=str(args.storage_path),
        preset=preset.name,
        tasks=expand_tasks(args.task or "both"),
        task_presets={
            task: replace(tp, n_instances=pick(args.instances, tp.n_instances), scale=pick(args.scale, tp.scale))
            for task, tp in preset.tasks.items()
        },
        epochs=pick(args.epochs, preset.epochs),
        num_samples=pick(args.num_samples, preset.num_samples),
        max_concurrent=args.max_concurrent,
        gpus_per_trial=pick(args.gpus_per_trial, preset.gpus_per_trial),
        cpus_per_trial=pick(args.cpus_per_trial, preset.cpus_per_trial),
        grace_period=preset.grace_period,
        reduction_factor=preset.reduction_factor,
        seed=pick(args.seed, 0),
        metric=pick(args.metric, DEFAULT_OBJECTIVE),
        address=args.address,
        dashboard=not args.no_dashboard,
        dashboard_host=args.dashboard_host,
    )


def _check_fits(cfg: StudyConfig, resources: dict[str, float]) -> None:
    for kind, flag, need in (
        ("GPU", "--gpus-per-trial", cfg.gpus_per_trial),
        ("CPU", "--cpus-per-trial", cfg.cpus_per_trial),
    ):
        have = resources.get(kind, 0.0)
        if need > have:
            hint = " or --preset smoke" if kind == "GPU" else ""
            raise UsageError(f"a trial needs {need:g} {kind} but this machine has {have:g}; lower {flag}{hint}")


def _create_study(cfg: StudyConfig) -> None:
    cfg.study_dir.mkdir(parents=True, exist_ok=False)
    tmp = cfg.study_dir / f".{STUDY_FILE}.tmp"
    tmp.write_text(cfg.to_json())
    tmp.replace(cfg.study_dir / STUDY_FILE)


def _finished(cfg: StudyConfig, task: str) -> int:
    from results.query import load_trials

    trials = load_trials(cfg.study_dir)
    return int(trials[(trials["task"] == task) & trials["status"].isin(FINAL_STATUSES)].shape[0])


def _report(cfg: StudyConfig) -> int:
    """Prints statuses and the best trial per task; returns the exit code."""
    from results.query import best_trials, load_trials

    trials = load_trials(cfg.study_dir)
    print(f"\nstudy {cfg.name}: tables in {cfg.tables_dir}")
    for task in cfg.tasks:
        rows = trials[trials["task"] == task]
        counts = rows["status"].value_counts().to_dict()
        print(f"  {task}: {len(rows)}/{cfg.num_samples} trials {counts}")
    best = best_trials(cfg.study_dir)
    for _, row in best.iterrows():
        print(
            f"  best {row['task']}: trial {row['trial_id']} {cfg.metric}={row['objective_best']:.4f} "
            f"at epoch {row['best_epoch']} (checkpoint {row['checkpoint_path']})"
        )
    errored = trials[trials["status"] == "error"]
    for _, row in errored.iterrows():
        print(f"  ERROR {row['task']} trial {row['trial_id']}: {row['error']} ({row['error_file']})")
    return EXIT_TRIAL_ERRORS if len(errored) else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    try:
        args = validate(build_parser().parse_args(argv))
    except UsageError as exc:
        print(f"study.run: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.umask(os.umask(0) | 0o022)  # nothing this study writes may be writable by other users

    from study import cluster
    from study.tuner import max_concurrent, run_task

    try:
        cfg = args.loaded if args.resume else None
        address = cfg.address if cfg and not args.address else args.address
        url = cluster.start(address=address, dashboard=not args.no_dashboard, dashboard_host=args.dashboard_host)
        if url:
            print(f"Ray dashboard: {url}  (sign in with the token in {cluster.token_path()}, or `ray get-auth-token`)")
        if cfg is None:
            cfg = resolve(args, cluster.sees_gpus())
            if not cfg.address:  # a local instance will not grow: a trial it cannot place would wait forever
                _check_fits(cfg, cluster.cluster_resources())
            _create_study(cfg)
        else:
            cfg = replace(cfg, address=address, restart_errored=args.restart_errored)
        if cfg.address and not args.resume:
            print(f"cluster {cfg.address}: every node must reach --storage {cfg.storage}")
        concurrency = max_concurrent(cfg, cluster.cluster_resources())
        print(
            f"study {cfg.name}: {', '.join(cfg.tasks)}, {cfg.num_samples} trials x {cfg.epochs} epochs per task, "
            f"{concurrency} at once, objective {cfg.metric}; storage {cfg.study_dir}"
        )
        for task in cfg.tasks:
            run_task(cfg, task, concurrency)
            finished = _finished(cfg, task)
            if finished < cfg.num_samples:  # Ray returns normally after Ctrl-C: the count tells
                print(f"interrupted: {task} has {finished}/{cfg.num_samples} trials finished; continue with:")
                print(f"  python -m study.run --resume --name {cfg.name} --storage {cfg.storage}")
                return EXIT_INTERRUPTED
        return _report(cfg)
    except UsageError as exc:
        print(f"study.run: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
