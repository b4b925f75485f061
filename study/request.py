"""The command line of ``python -m study.run``, made a ``Request``, and the plan it resolves to.

``parse(argv)`` checks the flags and, for ``--resume``, reads the saved study; ``study_config(req, gpus_seen)``
resolves the preset and the flags into the plan (``results.plan.StudyConfig``). Neither writes anything nor starts
Ray. Exit statuses: ``datamodules.cli.Exit``.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from datamodules.check import ROLES, check_folder, one_line
from datamodules.cli import Parser, UsageError, non_negative_float, whole_number
from datamodules.labels import TASKS
from datamodules.layout import DEFAULT_SPLIT, split_flag
from models.compile_mode import COMPILE_CHOICES, Compile
from models.metric_names import DEFAULT_OBJECTIVE, OBJECTIVES, VAL2_PREFIX
from results.plan import MAX_FAILURES, StudyConfig, expand_tasks
from results.store import is_uri
from study.lock import current_holder
from study.mirror import check_new_in_store, check_store, pull_study, working_copy
from study.presets import PRESETS
from study.saved import check_same_plan, flag_of, load_study
from study.storage import free_text

DESCRIPTION = "run (or resume) a hyperparameter study of the well-log segmenters"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Flags that define the plan of a study (argparse dests). With --resume the saved plan is used: these may be
# repeated with the saved values (the up-arrow habit), never changed.
PLAN_FLAGS = (
    "task", "preset", "num_samples", "epochs", "max_concurrent", "gpus_per_trial",
    "cpus_per_trial", "seed", "metric", "instances", "scale", "compile", "data", "val_data", "split", "max_failures",
)  # fmt: skip
ONE_TASK = " or ".join(f"--task {t}" for t in TASKS)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m study.run", description=DESCRIPTION)
    g = p.add_argument_group("study")
    g.add_argument("--task", choices=(*TASKS, "both"), help="which task(s) to tune (default: both)")
    g.add_argument(
        "--preset",
        choices=("auto", *PRESETS),
        help="run shape: 'full' (reference sizes, 1 GPU per trial), 'smoke' (CPU-sized); "
        "'auto' (default) picks full where there are GPUs (this machine's; the cluster's with --address), else smoke",
    )
    g.add_argument("--num-samples", type=whole_number(1), help="trials per task (default: from the preset)")
    g.add_argument("--epochs", type=whole_number(1), help="epoch budget per trial (default: from the preset)")
    g.add_argument(
        "--metric",
        help=f"objective to optimise, one of: {', '.join(OBJECTIVES)} (default: {DEFAULT_OBJECTIVE})",
    )
    g.add_argument("--instances", type=whole_number(1), help="rasters per task, train + validation (default: preset)")
    g.add_argument(
        "--scale",
        type=non_negative_float,
        help="raster scale, 1.0 = full size 3,200-12,800 x 480-640 (default: preset)",
    )
    g.add_argument("--seed", type=int, help="seed of the data and the Optuna sampler (default: 0)")
    g.add_argument(
        "--compile",
        choices=COMPILE_CHOICES,
        help="torch.compile each trial's network: auto (default) = on where the trial runs on a GPU, off on CPU",
    )
    g.add_argument(
        "--data",
        metavar="DIR",
        help="train and validate on this dataset folder (images/, labels/, optional split.csv; README 'Your own "
        "data') instead of rendering; --instances caps the rasters used; needs " + ONE_TASK,
    )
    g.add_argument(
        "--val-data",
        metavar="DIR",
        help="a second validation set (a dataset folder, real scans typically): its metrics are logged, tabled and "
        "reported as val2_*, and --metric may name them",
    )
    g.add_argument(
        "--split",
        type=split_flag,
        metavar="TRAIN,VAL,TEST",
        help="shares of the hash split of a --data folder without split.csv "
        f"(default {','.join(f'{f:g}' for f in DEFAULT_SPLIT)})",
    )
    r = p.add_argument_group("resources")
    r.add_argument("--max-concurrent", type=whole_number(1), help="trials at once (default: what Ray allows)")
    r.add_argument(
        "--gpus-per-trial", type=non_negative_float, help="GPUs per trial, may be fractional (default: preset)"
    )
    r.add_argument(
        "--cpus-per-trial",
        type=non_negative_float,
        help="CPUs per trial; DataLoader workers = CPUs - 1 (default: preset)",
    )
    r.add_argument(
        "--max-failures",
        type=whole_number(0),
        help=f"times a failed trial is retried from its last checkpoint before it is marked errored (default: "
        f"{MAX_FAILURES}; a lost node does not count)",
    )
    s = p.add_argument_group("storage")
    s.add_argument("--name", help="study name (default: study-<UTC timestamp>); an existing name needs --resume")
    s.add_argument(
        "--storage",
        default="./runs",
        help="where studies live, shared by all nodes: a path (local, or mounted on every node) or an object store "
        "URI, e.g. s3://bucket/prefix (default: ./runs)",
    )
    s.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted study --name with its saved plan (plan flags may be repeated, not changed)",
    )
    s.add_argument(
        "--no-report",
        action="store_true",
        help="do not write STUDY_DIR/report.html when the study ends (python -m results.report writes it later)",
    )
    s.add_argument(
        "--restart-errored",
        action="store_true",
        help="with --resume: restart errored trials from scratch instead of resuming them from their checkpoints",
    )
    c = p.add_argument_group("cluster and dashboard")
    c.add_argument(
        "--address",
        help="join the Ray cluster at this address (HOST:PORT, ray://HOST:PORT or auto) instead of starting a new "
        "local instance (default: Ray's RAY_ADDRESS where it is set; never a cluster merely found on this machine)",
    )
    c.add_argument("--no-dashboard", action="store_true", help="start the local Ray instance without its dashboard")
    c.add_argument(
        "--dashboard-host",
        default="127.0.0.1",
        help="interface the dashboard listens on (default: 127.0.0.1, loopback only)",
    )
    c.add_argument(
        "--verbose",
        action="store_true",
        help="also print Ray Tune's own trial tables and log lines (a new study; a resumed one keeps its setting)",
    )
    return p


def _storage_path(storage: str) -> Path:
    parsed = urlparse(storage)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme else storage).expanduser()
        if path.exists() and not path.is_dir():
            raise UsageError(f"--storage {storage!r} is a file, not a directory; give a directory path")
        return path.resolve()
    raise AssertionError(f"not a path: {storage}")  # URIs are study.mirror's


@dataclass(frozen=True)
class Request:
    """The command line, validated: what to run. Making one writes nothing and starts no Ray."""

    storage: Path  # where the driver writes the study's own files (for a study in object storage: a working copy)
    name: str
    resume: bool
    plan: dict[str, Any]  # the plan flags given (argparse dest -> value)
    saved: StudyConfig | None  # the study being resumed
    address: str | None
    dashboard: bool
    dashboard_host: str
    restart_errored: bool
    report: bool = True
    data_rasters: int | None = None  # the rasters of --data the study uses (checked), when it has one
    verbose: bool = False  # Ray Tune's own console output besides ours
    remote: str | None = None  # --storage URI of a study in object storage (study.mirror)


def parse(argv: list[str] | None) -> Request:
    """Arguments to a Request; UsageError (one line) for any mistake. Reads a study to resume, writes nothing."""
    args = build_parser().parse_args(argv)
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
    if args.restart_errored and not args.resume:
        raise UsageError("--restart-errored only applies with --resume")
    remote = args.storage if is_uri(args.storage) else None
    if remote is not None:
        check_store(remote)
    storage = working_copy() if remote else _storage_path(args.storage)
    for dest in ("data", "val_data"):
        if getattr(args, dest) is not None:
            setattr(args, dest, str(Path(getattr(args, dest)).expanduser().absolute()))
    plan = {dest: getattr(args, dest) for dest in PLAN_FLAGS if getattr(args, dest) is not None}
    saved = None
    if args.resume:
        if args.name is None:
            raise UsageError("--resume needs --name of the study to continue")
        if remote is not None:
            pull_study(remote, args.name, storage)
        saved = load_study(storage / args.name)
        if remote is not None:  # this driver's working copy, and the URI as given now (with any credentials)
            saved = replace(saved, storage=str(storage), remote=remote)
        check_same_plan(saved, plan)
        name = args.name
    elif remote is not None:
        name = args.name or datetime.now(timezone.utc).strftime("study-%Y%m%d-%H%M%S")
        check_new_in_store(remote, name)
        _check_data_flags(plan)
    else:
        parent = next(p for p in [storage, *storage.parents] if p.exists())
        if not os.access(parent, os.W_OK):
            read_only = os.statvfs(parent).f_flag & os.ST_RDONLY
            reason = f"read-only file system, {free_text(parent)}" if read_only else "not yours to write"
            raise UsageError(f"--storage {storage} is not writable ({reason}); choose another directory")
        if not storage.exists() and not storage.parent.is_dir():  # a typo in a parent folder
            raise UsageError(
                f"--storage {storage}: its parent folder {storage.parent} does not exist; correct the path, or "
                f"create it first (mkdir -p {storage})"
            )
        name = args.name or datetime.now(timezone.utc).strftime("study-%Y%m%d-%H%M%S")
        held = current_holder(storage, name)
        if held is not None:
            raise UsageError(str(held))
        if (storage / name).exists():
            raise UsageError(
                f"study {name!r} already exists in {storage}; use --resume to continue it, or choose another --name"
            )
        _check_data_flags(plan)
    data_rasters = _check_data(saved) if saved is not None else _check_data_plan(plan)
    return Request(
        storage=storage,
        name=name,
        resume=args.resume,
        plan=plan,
        saved=saved,
        address=args.address,
        dashboard=not args.no_dashboard,
        dashboard_host=args.dashboard_host,
        restart_errored=args.restart_errored,
        report=not args.no_report,
        data_rasters=data_rasters,
        verbose=args.verbose,
        remote=remote,
    )


def _check_data_flags(plan: dict[str, Any]) -> None:
    """The flags of a new study's data that contradict each other (UsageError)."""
    folders = [flag_of(d) for d in ("data", "val_data") if d in plan]
    if folders and plan.get("task", "both") == "both":
        raise UsageError(f"{' and '.join(folders)} hold the labels of one task: give {ONE_TASK}")
    if "data" in plan and "scale" in plan:
        raise UsageError("--scale sizes rendered rasters; --data rasters are read as they are: drop --scale")
    if "split" in plan and "data" not in plan:
        raise UsageError("--split divides a --data folder without split.csv: it needs --data")
    if plan.get("metric", "").startswith(VAL2_PREFIX) and "val_data" not in plan:
        raise UsageError(f"--metric {plan['metric']} scores the second validation set: it needs --val-data DIR")


def _check_folders(
    task: str, data: str | None, val_data: str | None, split: tuple[float, float, float], instances: int | None
) -> int | None:
    """``datamodules.check`` on the study's folders before anything runs; UsageError with the first problem.
    Returns the rasters of ``data`` the study uses (None without ``data``)."""
    used = None
    for flag, folder, role in (("--data", data, ROLES[0]), ("--val-data", val_data, ROLES[1])):
        if folder is None:
            continue
        result = check_folder(folder, task, split=split, role=role, instances=instances)
        if result.problems:
            raise UsageError(one_line(result, flag))
        if role == ROLES[0]:
            used = result.used
    return used


def _check_data_plan(plan: dict[str, Any]) -> int | None:
    if "data" not in plan and "val_data" not in plan:
        return None
    return _check_folders(
        plan["task"], plan.get("data"), plan.get("val_data"), plan.get("split", DEFAULT_SPLIT), plan.get("instances")
    )


def _check_data(cfg: StudyConfig) -> int | None:
    """A resumed study's folders, checked again: they may have changed since it started."""
    task = cfg.tasks[0]
    return _check_folders(task, cfg.data, cfg.val_data, cfg.split, cfg.task_presets[task].n_instances)


def study_config(req: Request, gpus_seen: bool, *, seen_by: str = "Ray") -> tuple[StudyConfig, str]:
    """The StudyConfig a request runs, and how its preset was chosen. Pure: no Ray, nothing written.

    Resuming gives the saved study; a new study takes its preset's values with the plan flags over them
    (``--preset auto``: ``full`` where GPUs are seen, by ``seen_by``, else ``smoke``).
    """
    if req.saved is not None:
        cfg = replace(
            req.saved,
            address=req.address or req.saved.address,
            restart_errored=req.restart_errored,
        )
        return cfg.with_resume(), f"preset {cfg.preset} (saved)"
    plan = req.plan
    asked = plan.get("preset", "auto")
    preset = PRESETS["full" if gpus_seen else "smoke"] if asked == "auto" else PRESETS[asked]
    how = f"preset {preset.name}"
    if asked == "auto":
        how += f" (auto: {seen_by} {'has GPUs' if gpus_seen else 'has no GPU'})"
    n_instances = {task: plan.get("instances", tp.n_instances) for task, tp in preset.tasks.items()}
    if req.data_rasters is not None:  # a --data study uses the folder's rasters, at most --instances of them
        n_instances = dict.fromkeys(n_instances, req.data_rasters)
    cfg = StudyConfig(
        name=req.name,
        storage=str(req.storage),
        preset=preset.name,
        tasks=expand_tasks(plan.get("task", "both")),
        task_presets={
            task: replace(tp, n_instances=n_instances[task], scale=plan.get("scale", tp.scale))
            for task, tp in preset.tasks.items()
        },
        epochs=plan.get("epochs", preset.epochs),
        num_samples=plan.get("num_samples", preset.num_samples),
        max_concurrent=plan.get("max_concurrent"),
        gpus_per_trial=plan.get("gpus_per_trial", preset.gpus_per_trial),
        cpus_per_trial=plan.get("cpus_per_trial", preset.cpus_per_trial),
        grace_period=preset.grace_period,
        reduction_factor=preset.reduction_factor,
        seed=plan.get("seed", 0),
        metric=plan.get("metric", DEFAULT_OBJECTIVE),
        address=req.address,
        remote=req.remote,
        compile=Compile(plan.get("compile", Compile.AUTO)),
        dashboard=req.dashboard,
        dashboard_host=req.dashboard_host,
        data=plan.get("data"),
        val_data=plan.get("val_data"),
        split=plan.get("split", DEFAULT_SPLIT),
        max_failures=plan.get("max_failures", MAX_FAILURES),
    )
    return cfg, how
