"""``python -m study.run``: run (or resume) a hyperparameter study of the well-log segmenters.

With no flags it runs a real, small study on this machine's CPUs (the ``smoke`` preset) in minutes.
Exit codes: 0 all trials fine; 1 some trials errored; 2 a user mistake, or a study another driver runs, or one
whose state is damaged (nothing run); 3 trials left unfinished for another reason (named); 74 the storage
failed (full, read-only, ...): the study stopped cleanly; 130 interrupted by SIGINT (Ctrl-C); 143 by SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import stat
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from datamodules.labels import TASKS
from models.metric_names import DEFAULT_OBJECTIVE, OBJECTIVES
from results.schema import FINAL_STATUSES
from study.cli import Parser, UsageError, non_negative_float, whole_number
from study.config import COMPILE_CHOICES, PRESETS, STUDY_FILE, StudyConfig, expand_tasks
from study.lock import LockHeld, StudyLock, current_holder
from study.stop import STOP, RayLogWatch, exit_status
from study.storage import free_text, storage_failure

EXIT_OK, EXIT_TRIAL_ERRORS, EXIT_USAGE, EXIT_UNFINISHED, EXIT_STORAGE = 0, 1, 2, 3, 74  # 74: sysexits EX_IOERR
EXIT_INTERRUPTED = exit_status(signal.SIGINT)  # 130; SIGTERM gives 143
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Flags that define the plan of a study (argparse dests). With --resume the saved plan is used: these may be
# repeated with the saved values (the up-arrow habit), never changed.
PLAN_FLAGS = (
    "task", "preset", "num_samples", "epochs", "max_concurrent", "gpus_per_trial",
    "cpus_per_trial", "seed", "metric", "instances", "scale", "compile",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m study.run", description=__doc__.splitlines()[0])
    g = p.add_argument_group("study")
    g.add_argument("--task", choices=(*TASKS, "both"), help="which task(s) to tune (default: both)")
    g.add_argument(
        "--preset",
        choices=("auto", *PRESETS),
        help="run shape: 'full' (reference sizes, 1 GPU per trial), 'smoke' (CPU-sized); "
        "'auto' (default) picks full where Ray sees GPUs, else smoke",
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
    s = p.add_argument_group("storage")
    s.add_argument("--name", help="study name (default: study-<UTC timestamp>); an existing name needs --resume")
    s.add_argument(
        "--storage",
        default="./runs",
        help="where studies live: a path, or a file:// URI; shared by all nodes (default: ./runs)",
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
    from models.hparams import param_types
    from results.query import TableError
    from results.tables import check_resumable

    try:  # a damaged or newer table must stop the resume before Ray starts, not inside Tune's callback
        check_resumable(cfg.tables_dir, param_types())
    except TableError as exc:
        raise UsageError(f"{exc}; move the damaged file aside to resume without its rows") from None
    return cfg


@dataclass(frozen=True)
class Request:
    """The command line, validated: what to run. Making one writes nothing and starts no Ray."""

    storage: Path
    name: str
    resume: bool
    plan: dict[str, Any]  # the plan flags given (argparse dest -> value)
    saved: StudyConfig | None  # the study being resumed
    address: str | None
    dashboard: bool
    dashboard_host: str
    restart_errored: bool
    report: bool = True


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _saved_matches(cfg: StudyConfig, dest: str, given: Any) -> tuple[bool, Any]:
    """Whether the flag value ``given`` agrees with the saved plan, and the saved value in the flag's terms."""
    presets = [cfg.task_presets[t] for t in cfg.tasks]
    if dest == "task":
        saved = "both" if tuple(cfg.tasks) == TASKS else ",".join(cfg.tasks)
        return expand_tasks(given) == tuple(cfg.tasks), saved
    if dest == "preset":  # auto chose the saved preset when the study started
        return given in ("auto", cfg.preset), cfg.preset
    if dest in ("instances", "scale"):
        attr = "n_instances" if dest == "instances" else "scale"
        values = sorted({getattr(p, attr) for p in presets})
        return values == [given], values[0] if len(values) == 1 else values
    saved = getattr(cfg, dest)
    return saved == given, saved


def check_same_plan(cfg: StudyConfig, plan: dict[str, Any]) -> None:
    """UsageError naming every plan flag whose value differs from the saved plan, with both values."""
    differ = []
    for dest, given in plan.items():
        same, saved = _saved_matches(cfg, dest, given)
        if not same:
            differ.append(f"{_flag(dest)} saved {saved}, given {given}")
    if differ:
        raise UsageError(
            f"--resume continues study {cfg.name!r} with its saved plan, and these flags differ from it: "
            f"{'; '.join(differ)}; drop them or give the saved values"
        )


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
    storage = _storage_path(args.storage)
    plan = {dest: getattr(args, dest) for dest in PLAN_FLAGS if getattr(args, dest) is not None}
    saved = None
    if args.resume:
        if args.name is None:
            raise UsageError("--resume needs --name of the study to continue")
        saved = _load_study(storage / args.name)
        check_same_plan(saved, plan)
        name = args.name
    else:
        parent = next(p for p in [storage, *storage.parents] if p.exists())
        if not os.access(parent, os.W_OK):
            read_only = os.statvfs(parent).f_flag & os.ST_RDONLY
            reason = f"read-only file system, {free_text(parent)}" if read_only else "not yours to write"
            raise UsageError(f"--storage {storage} is not writable ({reason}); choose another directory")
        name = args.name or datetime.now(timezone.utc).strftime("study-%Y%m%d-%H%M%S")
        held = current_holder(storage, name)
        if held is not None:
            raise UsageError(str(held))
        if (storage / name).exists():
            raise UsageError(
                f"study {name!r} already exists in {storage}; use --resume to continue it, or choose another --name"
            )
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
    )


def study_config(req: Request, gpus_seen: bool) -> tuple[StudyConfig, str]:
    """The StudyConfig a request runs, and how its preset was chosen. Pure: no Ray, nothing written.

    Resuming gives the saved study; a new study takes its preset's values with the plan flags over them
    (``--preset auto``: ``full`` where Ray sees GPUs, else ``smoke``).
    """
    if req.saved is not None:
        cfg = replace(req.saved, address=req.address or req.saved.address, restart_errored=req.restart_errored)
        return cfg.with_resume(), f"preset {cfg.preset} (saved)"
    plan = req.plan
    asked = plan.get("preset", "auto")
    preset = PRESETS["full" if gpus_seen else "smoke"] if asked == "auto" else PRESETS[asked]
    how = f"preset {preset.name}"
    if asked == "auto":
        how += f" (auto: Ray sees {'GPUs' if gpus_seen else 'no GPU'})"
    cfg = StudyConfig(
        name=req.name,
        storage=str(req.storage),
        preset=preset.name,
        tasks=expand_tasks(plan.get("task", "both")),
        task_presets={
            task: replace(tp, n_instances=plan.get("instances", tp.n_instances), scale=plan.get("scale", tp.scale))
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
        compile=plan.get("compile", "auto"),
        dashboard=req.dashboard,
        dashboard_host=req.dashboard_host,
    )
    return cfg, how


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
    try:
        cfg.study_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:  # created since parse() looked: another driver, now finished
        raise UsageError(
            f"study {cfg.name!r} already exists in {cfg.storage}; use --resume to continue it, or choose another --name"
        ) from None
    tmp = cfg.study_dir / f".{STUDY_FILE}.tmp"
    try:
        tmp.write_text(cfg.to_json())
        tmp.replace(cfg.study_dir / STUDY_FILE)
    except OSError:  # e.g. a full disk: leave no half-made study behind
        shutil.rmtree(cfg.study_dir, ignore_errors=True)
        raise


def _resume_command(cfg: StudyConfig) -> str:
    return f"python -m study.run --resume --name {cfg.name} --storage {cfg.storage}"


def _acquire(lock: StudyLock) -> None:
    """Take the study lock before anything is written or restored; UsageError naming the holder, or saying why
    the storage cannot take the lock file (the pre-flight writability check of a new study)."""
    try:
        lock.acquire()
    except LockHeld as exc:
        raise UsageError(f"{exc}; wait for it to end or stop it (Ctrl-C or SIGTERM), then try again") from None
    except OSError as exc:
        failure = storage_failure(exc, lock.storage)
        reason = failure.reason if failure else exc.strerror or str(exc)
        raise UsageError(
            f"--storage {lock.storage} is not writable ({reason}, {free_text(lock.storage)}); "
            "free space, fix the storage or choose another directory"
        ) from None
    if lock.takeover:
        print(f"study.run: {lock.takeover}", file=sys.stderr)


def _prepare_resume(cfg: StudyConfig) -> None:
    """Under the lock, before Ray starts: the study must take writes; rows an earlier driver left ``running``
    become ``interrupted``; a journal's cut last line is removed; Ray's damaged state falls back to its last
    good copy (UsageError when there is none: nothing is run)."""
    from ray import tune

    from study.callbacks import study_tables
    from study.search import journal_path
    from study.state import DamagedState, check_before_restore, newest_set
    from study.storage import check_writable, repair_journal

    reason = check_writable(cfg.study_dir)
    if reason is not None:
        raise UsageError(
            f"the study {cfg.study_dir} is not writable ({reason}, {free_text(cfg.study_dir)}); "
            "free space or fix the storage, then resume again"
        )
    tables = study_tables(cfg.tables_dir, cfg.name, cfg.metric)
    for task in cfg.tasks:  # first what may refuse the resume, then the repairs
        try:
            note = check_before_restore(cfg.study_dir / task)
        except DamagedState as exc:
            raise UsageError(str(exc)) from None
        if note:
            print(f"study.run: {note}", file=sys.stderr)
        restorable = tune.Tuner.can_restore(str(cfg.study_dir / task)) and newest_set(cfg.study_dir / task)
        if tables.trial_ids(task) and not restorable:
            raise UsageError(
                f"{cfg.study_dir / task} holds no experiment state of Ray's, but the tables hold {task} trials: "
                "resuming would start a fresh experiment under this study; nothing was run. Put back a backup of "
                "that directory, or start the study again under a new --name"
            )
    for task in cfg.tasks:
        repair_journal(journal_path(cfg.study_dir, task))
    stale = tables.interrupt_running()
    if stale:
        print(
            f"study.run: trials {', '.join(stale)} were left 'running' by a driver that stopped without saying so; "
            "marked interrupted",
            file=sys.stderr,
        )


def _preflight(cfg: StudyConfig) -> None:
    """Warn, with the figures, when the storage has less free space than the study may still write."""
    from study.storage import estimate, free_bytes, human, used_bytes
    from study.tuner import CHECKPOINTS_KEPT

    plan = estimate(cfg, CHECKPOINTS_KEPT)
    need = max(0, plan.total - used_bytes(cfg.study_dir))
    free = free_bytes(cfg.study_dir)
    if free is not None and free < need:
        print(
            f"study.run: warning: {cfg.storage} has {human(free)} free, less than this study may still write "
            f"({plan.describe()}); if it fills, the study stops (exit {EXIT_STORAGE}) and --resume continues it "
            "once there is room",
            file=sys.stderr,
        )


def _live_statuses(cfg: StudyConfig, task: str) -> dict[str, str]:
    """trial id -> status of the task's trials, as the driver knows them (also rows the storage refused)."""
    from study.callbacks import study_tables

    return study_tables(cfg.tables_dir, cfg.name, cfg.metric).statuses(task)


def _finished(cfg: StudyConfig, task: str) -> int:
    return sum(status in FINAL_STATUSES for status in _live_statuses(cfg, task).values())


def _settle(cfg: StudyConfig | None) -> list[str]:
    """Once the driver stops, no trial row says ``running``: each becomes ``interrupted``, and rows held in
    memory while the storage failed are written (into the room the reserve kept). Never raises."""
    from results.query import TableError
    from study.callbacks import study_tables
    from study.storage import release_reserve

    if cfg is None or not cfg.tables_dir.is_dir():
        return []
    if STOP.storage is not None:
        release_reserve(cfg.study_dir)
    try:
        tables = study_tables(cfg.tables_dir, cfg.name, cfg.metric)
        ids = tables.interrupt_running()
        if tables.held:
            tables.flush()
            tables.held = False
        return ids
    except (OSError, TableError) as exc:
        logging.getLogger(__name__).warning(
            "could not write the final statuses to %s (%s); --resume marks rows left 'running' as interrupted",
            cfg.tables_dir,
            exc,
        )
        return []


def _stopped(cfg: StudyConfig, task: str | None) -> int:
    """The study stopped with trials unfinished: say why and how to continue; returns the exit status."""
    _settle(cfg)
    if task is None:
        task = next((t for t in cfg.tasks if _finished(cfg, t) < cfg.num_samples), cfg.tasks[-1])
    progress = f"{task} has {_finished(cfg, task)}/{cfg.num_samples} trials finished"
    if STOP.storage is not None:
        print(f"study.run: storage failure: {STOP.storage.line()}; the study stopped: {progress}", file=sys.stderr)
        print(f"  free space or fix the storage, then continue with: {_resume_command(cfg)}", file=sys.stderr)
        return EXIT_STORAGE
    if STOP.signum is not None:
        print(f"interrupted ({signal.Signals(STOP.signum).name}): {progress}; continue with:")
        print(f"  {_resume_command(cfg)}")
        return exit_status(STOP.signum)
    statuses = _live_statuses(cfg, task)
    open_trials = [f"{t} ({status})" for t, status in sorted(statuses.items()) if status not in FINAL_STATUSES]
    never = cfg.num_samples - len(statuses)
    why = STOP.other or "Ray Tune ended the run although nothing stopped it"
    left = ", ".join([*open_trials, *([f"{never} never started"] if never > 0 else [])])
    print(f"unfinished: {progress}: {why}; unfinished: {left}; continue with:")
    print(f"  {_resume_command(cfg)}")
    return EXIT_UNFINISHED


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


def _write_report(cfg: StudyConfig) -> None:
    """The study's HTML report beside its tables; a report that cannot be built is said, not fatal."""
    from results.report import ReportError, write_report

    try:
        path = write_report(cfg.study_dir, device="auto" if cfg.gpus_per_trial > 0 else "cpu")
    except ReportError as exc:
        print(f"report not written: {exc}")
        return
    print(f"report: {path}  (rebuild with: python -m results.report {cfg.study_dir})")


def run(req: Request) -> int:
    """Starts (or joins) Ray, runs the request's study to its end, returns the exit code.

    The study lock is taken first and released on every exit; SIGINT and SIGTERM stop the study cleanly, and so
    does a storage failure (``study.stop``); whatever the exit, no trial row is left ``running``.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.umask(os.umask(0) | 0o022)  # nothing this study writes may be writable by other users

    from study import cluster
    from study.callbacks import StateNotRestored, forget_tables
    from study.storage import make_reserve, release_reserve, reserve_size
    from study.tuner import close_optuna_study, max_concurrent, run_task

    STOP.reset()
    STOP.install()
    lock: StudyLock | None = None
    watch: RayLogWatch | None = None
    cfg: StudyConfig | None = None  # the study, once this driver runs it (past the checks that may refuse it)
    try:
        try:
            lock = StudyLock(req.storage, req.name)
        except ValueError as exc:  # a bad WELLLOG_STUDY_LOCK_* value
            raise UsageError(str(exc)) from None
        _acquire(lock)
        lock.on_lost = lambda: STOP.stop_for("another driver took over the study lock while this one was stalled")
        if req.saved is not None:
            _prepare_resume(req.saved)
            cfg = req.saved
            _preflight(req.saved)
        elif req.plan.get("preset", "auto") != "auto":
            _preflight(study_config(req, gpus_seen=False)[0])  # the preset does not depend on what Ray sees
        address = req.address or (req.saved.address if req.saved else None)
        url = cluster.start(address=address, dashboard=req.dashboard, dashboard_host=req.dashboard_host)
        STOP.install()  # ray.init put its own SIGTERM handler in place
        if url:
            print(f"Ray dashboard: {url}  (sign in with the token in {cluster.token_path()}, or `ray get-auth-token`)")
        planned, how = study_config(req, cluster.sees_gpus())
        if not planned.resume:
            if not planned.address:  # a local instance will not grow: a trial it cannot place would wait forever
                _check_fits(planned, cluster.cluster_resources())
            if req.plan.get("preset", "auto") == "auto":
                _preflight(planned)
            _create_study(planned)
        cfg = planned
        watch = RayLogWatch(cfg.storage, cfg.study_dir).__enter__()  # until Ray has shut down
        make_reserve(cfg.study_dir, reserve_size(cfg))
        concurrency = max_concurrent(cfg, cluster.cluster_resources())
        print(
            f"study {cfg.name}: {how}; {', '.join(cfg.tasks)}, {cfg.num_samples} trials x {cfg.epochs} epochs "
            f"per task, {concurrency} at once, objective {cfg.metric}, compile {cfg.compile}; "
            f"storage {cfg.study_dir}"
        )
        print(f"TensorBoard: tensorboard --logdir {cfg.study_dir}  (every trial's curves; Ray's own line is off)")
        if cfg.address and not cfg.resume:
            print(f"cluster {cfg.address}: every node must reach --storage {cfg.storage}")
        for task in cfg.tasks:
            if STOP.requested:
                return _stopped(cfg, task)
            run_task(cfg, task, concurrency)
            if STOP.requested or _finished(cfg, task) < cfg.num_samples:
                return _stopped(cfg, task)
            close_optuna_study(cfg, task)
        STOP.end()
        code = _report(cfg)
        if req.report:
            _write_report(cfg)
        return code
    except UsageError as exc:
        print(f"study.run: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StateNotRestored as exc:
        print(
            f"study.run: error: {exc}; nothing was run. Put back a backup of that directory, or start the study "
            "again under a new --name",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except SystemExit as exc:
        if exc.code != signal.SIGTERM:
            raise
        # SIGTERM while Ray was starting, before this driver's handler was back in place: Ray's turned it into this
        STOP.signum = signal.SIGTERM
        if cfg is None:
            print("interrupted (SIGTERM) while Ray was starting; nothing was run", file=sys.stderr)
            return exit_status(signal.SIGTERM)
        return _stopped(cfg, None)
    except KeyboardInterrupt:  # a second signal: stop at once
        signum = STOP.signum or signal.SIGINT
        print(f"interrupted at once ({signal.Signals(signum).name})", file=sys.stderr)
        if cfg is not None:
            _settle(cfg)
            print(f"  continue with: {_resume_command(cfg)}", file=sys.stderr)
        return exit_status(signum)
    except Exception as exc:
        # A storage failure that raised through Ray, Optuna or our own writes; or any error once the storage
        # has failed (Ray reads back files it could not write, e.g. a trial's cut error.pkl).
        failure = STOP.storage or storage_failure(exc, req.storage, req.storage / req.name)
        if failure is None:
            raise
        logging.getLogger(__name__).debug("after the storage failure", exc_info=True)
        if cfg is None:
            print(f"study.run: storage failure: {failure.line()}; nothing was run", file=sys.stderr)
            return EXIT_STORAGE
        STOP.storage_failed(failure)
        return _stopped(cfg, None)
    finally:
        STOP.end()
        if lock is not None and lock.held:
            _settle(cfg)
            if cfg is not None:
                release_reserve(cfg.study_dir)  # each driver keeps its own while it runs
        forget_tables()
        cluster.shutdown()
        if watch is not None:
            watch.__exit__()
        if lock is not None:
            lock.release()
        STOP.uninstall()


def main(argv: list[str] | None = None) -> int:
    # Line by line, also into a file or a pipe: the dashboard URL and the plan are the first lines of a log.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        req = parse(argv)
    except UsageError as exc:
        print(f"study.run: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run(req)
    except KeyboardInterrupt:  # a second signal while the driver was already shutting down Ray
        signum = STOP.signum or signal.SIGINT
        print(f"interrupted at once ({signal.Signals(signum).name})", file=sys.stderr)
        return exit_status(signum)


if __name__ == "__main__":
    STOP.keep_until_exit()
    STOP.exit(main())
