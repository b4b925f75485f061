"""Why a study stops before its trials are done: a signal (SIGINT, SIGTERM) or a storage failure.

One ``Stop`` per driver process, because signal handlers are per process: ``STOP``. The first SIGINT or
SIGTERM, or the first storage failure, asks Ray Tune to end the run the way Ctrl-C does: we raise SIGUSR1, whose
handler Tune installs in every ``fit`` to set its "interrupted" event; the run then stops its trials (each
keeps its last epoch's checkpoint), saves its state once more and ``fit`` returns. A second SIGINT or SIGTERM
raises KeyboardInterrupt at once. Tune's own SIGINT handler is turned off (``TUNE_DISABLE_SIGINT_HANDLER``) so
that both signals take the same path, and Ray's SIGTERM handler (which kills the local Ray processes and aborts
the driver) is replaced once Ray has started. Once the study's outcome is settled (``end``), a signal has nothing
to stop: it is said, and the driver process keeps these handlers to its very exit (``keep_until_exit``, ``exit``)
so that Ctrl-C during Ray's shutdown never kills it by the signal.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar, overload

from study.storage import StorageFailure, storage_failure

log = logging.getLogger(__name__)

# What signal.getsignal returns and signal.signal takes.
_Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
_S = TypeVar("_S")
_P = ParamSpec("_P")
_R = TypeVar("_R")
_D = TypeVar("_D")

HANDLED = (signal.SIGINT, signal.SIGTERM)
TUNE_SIGINT_ENV = "TUNE_DISABLE_SIGINT_HANDLER"


def exit_status(signum: int) -> int:
    """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


class Stop:
    """What asked the study to stop, first come: ``signum`` and/or ``storage``; ``other`` for anything else."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.storage: StorageFailure | None = None
        self.other: str | None = None
        self._lock = threading.Lock()
        self._saved: dict[int, _Handler] = {}  # handlers and environment before the first install
        self.keep = False  # the driver's own process: handlers stay to its exit (``keep_until_exit``)
        self.ended = False  # the study's outcome is settled; a signal now has nothing to stop (``end``)

    @property
    def requested(self) -> bool:
        return self.signum is not None or self.storage is not None or self.other is not None

    def reset(self) -> None:
        self.signum = self.storage = self.other = None
        self.ended = False

    def install(self) -> bool:
        """Handle SIGINT and SIGTERM here (again after ``ray.init``, which installs its own SIGTERM handler).

        Only the main thread may install handlers; elsewhere (a test that runs the driver in a thread) this
        does nothing and returns False.
        """
        if threading.current_thread() is not threading.main_thread():
            return False
        if not self._saved:
            self._saved = {s: signal.getsignal(s) for s in (*HANDLED, signal.SIGUSR1)}
            self._saved_env = os.environ.get(TUNE_SIGINT_ENV)
        os.environ[TUNE_SIGINT_ENV] = "1"
        for signum in HANDLED:
            signal.signal(signum, self._on_signal)
        if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGUSR1, _ignore)  # until a Tune run installs its own: never the default (exit)
        return True

    def keep_until_exit(self) -> None:
        """This process is the driver (``python -m study.run``): ``uninstall`` leaves the handlers in place to
        the process's exit (``exit``), so that Ctrl-C while Ray shuts down and the interpreter exits, with every
        table written, is said instead of killing the process by the signal (exit -2)."""
        self.keep = True

    def end(self) -> None:
        """The study's outcome is settled (its tables are written or being settled): a signal from now on has
        nothing to stop; the first is said and ignored, a second stops at once."""
        self.ended = True

    def exit(self, code: int) -> None:
        """End the driver process with ``code``: the ``atexit`` functions run with these handlers still in
        place, then the process exits without the interpreter's teardown, which would put the default handlers
        back (a signal then kills the process) while Ray's threads and objects are torn down."""
        import atexit

        logging.shutdown()
        atexit._run_exitfuncs()  # what interpreter exit would run, minus resetting the handlers
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)

    def uninstall(self) -> None:
        """Put back the handlers (and Tune's setting) found by the first ``install``."""
        if not self._saved or threading.current_thread() is not threading.main_thread():
            return
        if self.keep:
            return
        for signum, handler in self._saved.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if self._saved_env is None:
            os.environ.pop(TUNE_SIGINT_ENV, None)
        else:
            os.environ[TUNE_SIGINT_ENV] = self._saved_env
        self._saved = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.ended:
            if self.signum is not None:  # asked before: this one means "at once"
                if self.keep:
                    os._exit(exit_status(signum))
                raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
            self.signum = signum
            name = signal.Signals(signum).name
            line = f"{name} received after the study ended: nothing to stop (send it again to stop at once)"
            print(line, file=sys.stderr)
            return
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
        self.signum = signum
        log.warning(
            "%s received: the trials stop at their last checkpoint and the tables are written "
            "(send it again to stop at once)",
            signal.Signals(signum).name,
        )
        self.ask_tune()

    def storage_failed(self, failure: StorageFailure) -> None:
        """Note the first storage failure and stop the run (any thread)."""
        with self._lock:
            if self.storage is not None:
                return
            self.storage = failure
        log.info("storage failure: %s; stopping the study", failure.line())  # the driver says it at the end
        self.ask_tune()

    def stop_for(self, reason: str) -> None:
        """Stop the run for another reason (a line saying why)."""
        with self._lock:
            if self.other is None:
                self.other = reason
        self.ask_tune()

    def ask_tune(self) -> None:
        """Ask a running Tune ``fit`` to stop as after Ctrl-C (no effect between runs)."""
        if signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, None):
            os.kill(os.getpid(), signal.SIGUSR1)


@overload
def guard_storage(
    dirs: Callable[[_S], tuple[Path, Path]],
) -> Callable[[Callable[Concatenate[_S, _P], _R]], Callable[Concatenate[_S, _P], _R | None]]: ...
@overload
def guard_storage(
    dirs: Callable[[_S], tuple[Path, Path]], default: _D
) -> Callable[[Callable[Concatenate[_S, _P], _R]], Callable[Concatenate[_S, _P], _R | _D]]: ...
def guard_storage(
    dirs: Callable[[_S], tuple[Path, Path]], default: object = None
) -> Callable[[Callable[Concatenate[_S, _P], _R]], Callable[Concatenate[_S, _P], object]]:
    """Decorate a method that writes to the study's storage: a storage failure stops the study (``STOP``) and
    the method returns ``default`` instead of raising through Ray; once the storage has failed, the method is
    not called again in this driver (a second append after a cut one would garble a journal).

    Args:
        dirs: ``self`` -> (the storage path to name, the study directory).
    """

    def decorate(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], object]:
        @functools.wraps(method)
        def guarded(self: _S, *args: _P.args, **kwargs: _P.kwargs) -> object:
            if STOP.storage is not None:
                return default
            try:
                return method(self, *args, **kwargs)
            except OSError as exc:
                failure = storage_failure(exc, *dirs(self))
                if failure is None:
                    raise
                STOP.storage_failed(failure)
                return default

        return guarded

    return decorate


# Ray's loggers that report, with the exception, a write to the storage that failed: a trial's error, the copy
# of the experiment state, a background sync, a checkpoint deletion, an error never retrieved.
RAY_LOGGERS = (
    "ray.tune.execution.tune_controller",
    "ray.tune.execution.experiment_state",
    "ray.train._internal.syncer",
    "ray.train._internal.storage",
    "ray._private.worker",
)


class RayLogWatch(logging.Filter):
    """Learns of storage failures from Ray's own log records (their exception, else their text), stops the study
    on the first, and drops such records: the driver says it once, in one line, at the end."""

    def __init__(self, storage: Path, study_dir: Path) -> None:
        super().__init__()
        self.storage, self.study_dir = Path(storage), Path(study_dir)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        failure = storage_failure(exc, self.storage, self.study_dir) if exc is not None else None
        if failure is None:
            current = sys.exc_info()[1]  # Ray logs some inside its except block, with the traceback as text
            failure = storage_failure(current, self.storage, self.study_dir) if current is not None else None
        if failure is None:
            failure = storage_failure(RuntimeError(record.getMessage()), self.storage, self.study_dir)
        if failure is None:
            return True
        STOP.storage_failed(failure)
        return False

    def __enter__(self) -> RayLogWatch:
        for name in RAY_LOGGERS:
            logging.getLogger(name).addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in RAY_LOGGERS:
            logging.getLogger(name).removeFilter(self)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """SIGUSR1 outside a Tune run: nothing to stop."""


STOP = Stop()
