"""``python -m study.run``: run (or resume) a hyperparameter study of the well-log segmenters.

With no flags it runs a real, small study on this machine's CPUs (the ``smoke`` preset) in minutes. The path of
a request, top-down: ``study.request.parse`` (the command line, checked; nothing written), ``run`` below (the lock,
signal handling, Ray and its log watch held in one ``ExitStack``; ``study.prepare`` makes or checks the study,
``study.tuner`` runs each task), and ``study.outcome`` (the closing lines and the exit status).

Exit statuses (``datamodules.cli.Exit``): 0 all trials fine; 1 some trials errored; 2 a user mistake, or a study
another driver runs, or one whose state is damaged (nothing run); 3 trials left unfinished for another reason
(named); 74 the storage failed (full, read-only, ...): the study stopped cleanly; 130 interrupted by SIGINT
(Ctrl-C); 143 by SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from datamodules.cli import Exit, UsageError
from results.plan import StudyConfig
from results.tables import StudyTables
from study import cluster, importance, outcome, prepare
from study.lock import Lock, StudyLock
from study.mirror import Mirror
from study.object_lock import lock_for
from study.progress import quiet_ray_advice
from study.request import Request, parse, study_config
from study.stop import STOP, RayLogWatch, guard_storage
from study.storage import make_reserve, release_reserve, reserve_size, stands_for
from study.tuner import close_optuna_study, max_concurrent, run_task


class _Held:
    """What this driver holds once it runs the study (past the checks that may refuse it): plan and tables, and
    for a study in object storage the mirror that sends the driver's files to the store."""

    def __init__(self, mirror: Mirror | None = None) -> None:
        self.study: tuple[StudyConfig, StudyTables] | None = None
        self.mirror = mirror

    def push(self) -> None:
        """Send what changed to the store (a study in object storage); a failing store stops the study."""
        if self.mirror is not None:
            _push(self.mirror)

    def opened(self) -> tuple[StudyConfig, StudyTables]:
        if self.study is None:
            raise RuntimeError("the study's tables are not open yet")
        return self.study

    def open(self, cfg: StudyConfig) -> StudyTables:
        """The study's tables, opened once here and handed to everything that writes them."""
        tables = StudyTables(cfg.tables_dir, cfg.name, cfg.metric)
        tables.after_write = self.push
        self.study = (cfg, tables)
        return tables


def _mirror_dirs(mirror: Mirror) -> tuple[Path, Path]:
    return mirror.local, mirror.study_dir


@guard_storage(_mirror_dirs)
def _push(mirror: Mirror) -> None:
    """``Mirror.push`` under the study's one storage guard (``study.stop``): a failing store stops the study."""
    mirror.push()


def _release(lock: Lock, held: _Held) -> None:
    """On every exit, while the lock is held: no trial row stays ``running``, and this driver's reserve goes."""
    if not lock.held or held.study is None:
        return
    cfg, tables = held.study
    outcome.settle(cfg, tables)
    release_reserve(cfg.study_dir)  # each driver keeps its own while it runs
    held.push()  # a study in object storage: the final statuses


def _take_lock(req: Request) -> Lock:
    try:
        lock = lock_for(req.remote, req.name) if req.remote else StudyLock(req.storage, req.name)
    except ValueError as exc:  # a bad WELLLOG_STUDY_LOCK_* value
        raise UsageError(str(exc)) from None
    prepare.acquire(lock)
    lock.on_lost = lambda: STOP.stop_for("another driver took over the study lock while this one was stalled")
    return lock


def _run(req: Request, stack: ExitStack, held: _Held) -> int:
    if req.remote is not None:
        stands_for(req.storage, req.remote)
        held.mirror = Mirror(req.storage, req.remote, req.name)
        stack.callback(held.mirror.discard)  # last: everything in the working copy is in the store
    lock = _take_lock(req)
    stack.callback(lock.release)
    stack.callback(_release, lock, held)  # after Ray has shut down, before the lock goes
    chosen = cluster.choose(req.address, req.saved.address if req.saved else None)  # never a cluster found here
    if chosen.address:
        cluster.reach(chosen)  # a head that is not there is refused in seconds, not after Ray's minutes of retries
    req = replace(req, address=chosen.address)  # an address from RAY_ADDRESS is saved with the plan too
    address = chosen.address
    planned = None  # a local study's plan is made before Ray starts, against this machine
    if req.saved is not None:
        if outcome.all_finished(req.saved, held.open(req.saved)):  # nothing to resume: said without starting Ray
            return outcome.already_finished(*held.opened())
        prepare.prepare_resume(*held.opened())
        prepare.preflight(req.saved)
    elif address is None:
        machine = cluster.local_resources()
        planned = study_config(req, machine.get("GPU", 0.0) > 0, seen_by="this machine")
        prepare.check_fits(planned[0], machine)
        prepare.preflight(planned[0])
    elif req.plan.get("preset", "auto") != "auto":
        prepare.preflight(study_config(req, gpus_seen=False)[0])  # the preset does not depend on what Ray sees
    stack.enter_context(RayLogWatch(req.storage, req.storage / req.name))  # until Ray has shut down
    if not req.verbose:
        stack.enter_context(quiet_ray_advice())
    url = cluster.start(chosen, dashboard=req.dashboard, dashboard_host=req.dashboard_host)
    stack.callback(cluster.shutdown)
    STOP.install()  # ray.init put its own SIGTERM handler in place
    if STOP.signum is not None and req.saved is None:
        print(f"interrupted ({signal.Signals(STOP.signum).name}) while Ray was starting; nothing was started")
        return Exit.for_signal(STOP.signum)
    print(cluster.describe(chosen, url, cluster.token_path()))
    if req.remote is None:  # a study in object storage: every node reaches the store (checked by Ray's marker)
        cluster.check_shared(req.storage)  # before any trial: a cluster's nodes must all see a storage path
    cfg, how = planned if planned is not None else study_config(req, cluster.sees_gpus())
    if not cfg.resume:
        if not cfg.address:  # a local instance will not grow: a trial it cannot place would wait forever
            prepare.check_fits(cfg, cluster.cluster_resources())
        if planned is None and req.plan.get("preset", "auto") == "auto":
            prepare.preflight(cfg)
        prepare.create_study(cfg)
    tables = held.open(cfg)
    held.push()  # the plan is in the store before any trial starts
    if cfg.remote is None:
        make_reserve(cfg.study_dir, reserve_size(cfg))
    concurrency = max_concurrent(cfg, cluster.cluster_resources())
    print(
        f"study {cfg.name}: {how}; {', '.join(cfg.tasks)}, {cfg.num_samples} trials x {cfg.epochs} epochs "
        f"per task, {concurrency} at once, objective {cfg.metric}, compile {cfg.compile}; storage {cfg.study_location}"
    )
    if cfg.data or cfg.val_data:
        data = f"data {cfg.data}" if cfg.data else "data rendered by the generator"
        print(f"{data}{f'; second validation set {cfg.val_data}' if cfg.val_data else ''}")
    print(f"TensorBoard: tensorboard --logdir {cfg.study_location}  (every trial's curves)")
    for task in cfg.tasks:
        if STOP.requested:
            return outcome.stopped(cfg, tables, task)
        run_task(cfg, task, concurrency, tables, verbose=req.verbose)
        if STOP.requested or outcome.finished(tables, task) < cfg.num_samples:
            return outcome.stopped(cfg, tables, task)
        close_optuna_study(cfg, task)
    importance.record(tables)  # the finished study's importances, whatever the last trial's write met
    STOP.end()
    code = outcome.summary(cfg)
    if req.report:
        outcome.report(cfg)
        held.push()
    return code


def run(req: Request) -> int:
    """Run (or resume) the request's study to its end.

    The study lock is taken first and released on every exit; SIGINT and SIGTERM stop the study cleanly, and so
    does a storage failure (``study.stop``); whatever the exit, no trial row is left ``running``.

    Args:
        req: the checked command line (``study.request.parse``).

    Returns:
        The exit status (``datamodules.cli.Exit``); what happened has been said on stdout or stderr.

    Raises:
        Exception: only a bug; every outcome of a study, a user mistake included, is an exit status.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.umask(os.umask(0) | 0o022)  # nothing this study writes may be writable by other users
    held = _Held()
    with ExitStack() as stack:  # unwound after the exit status is settled: Ray, its log watch, the lock, signals
        STOP.reset()
        STOP.install()
        stack.callback(STOP.uninstall)
        try:
            return _run(req, stack, held)
        except BaseException as exc:  # noqa: BLE001 - exit_for re-raises what is no outcome of a study
            return outcome.exit_for(exc, req.storage / req.name, held.study)
        finally:
            STOP.end()  # from here on a signal has nothing to stop


def main(argv: list[str] | None = None) -> int:
    # Line by line, also into a file or a pipe: the dashboard URL and the plan are the first lines of a log.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        req = parse(argv)
    except UsageError as exc:
        print(f"study.run: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    try:
        return run(req)
    except KeyboardInterrupt:  # a second signal while the driver was already shutting down Ray
        signum = STOP.signum or signal.SIGINT
        print(f"interrupted at once ({signal.Signals(signum).name})", file=sys.stderr)
        return Exit.for_signal(signum)


if __name__ == "__main__":
    STOP.keep_until_exit()
    STOP.exit(main())
