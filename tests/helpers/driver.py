"""`python -m study.run` as a child process with its own HOME, for the tests and benchmarks that interrupt, kill or
race real drivers: its output collected line by line, the moment its first trial starts noted.

A test helper that ``bench/faults.py`` and ``bench/interrupts.py`` import too: bench is a dev tool, run from the
repository root (``python -m bench.faults``), where ``tests`` is importable; it is not part of the installed
package, and neither is this module."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from study.progress import TRIAL_STARTED

REPO = Path(__file__).resolve().parents[2]
STARTED = TRIAL_STARTED  # the driver's line when a trial starts (study.progress)


def driver_env(home: Path, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """This environment with a private HOME (Ray's token lives there), output unbuffered, no GPU; ``extra`` on top
    (a ``None`` value removes the variable)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class Driver:
    """`python -m study.run ARGS` in the background (``env``: the whole environment, default ``driver_env(home)``)."""

    def __init__(self, args: list[str], home: Path, env: Mapping[str, str] | None = None) -> None:
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "study.run", *args],
            cwd=REPO,
            env=dict(env) if env is not None else driver_env(Path(home)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.first_trial_at: float | None = None  # seconds from the process start to its first trial's start
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if STARTED in line and self.first_trial_at is None:
                self.first_trial_at = time.monotonic() - self.t0

    def wait_for_progress(self, study_dir: Path, before: Mapping[str, int], timeout: float = 240) -> bool:
        """Whether, within ``timeout`` seconds and while this driver runs, the study's epochs table moved on from
        ``before`` (``progress``): the moment to interrupt a driver that has done some work of its own."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            if progress(study_dir) != before:
                return self.proc.poll() is None
            time.sleep(0.2)
        return False

    def wait(self, timeout: float = 1200) -> int:
        """The exit status, once the process and the reading of its output have ended."""
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


def progress(study_dir: Path) -> dict[str, int]:
    """The last epoch each trial has in the study's epochs table ({} before the first)."""
    from results.query import load_epochs

    if not (Path(study_dir) / "tables" / "epochs.parquet").exists():
        return {}
    return load_epochs(study_dir).groupby("trial_id")["epoch"].max().astype(int).to_dict()


def kill_orphans(home: Path) -> int:
    """Ray's processes of a SIGKILLed driver outlive it: end every process that runs with this HOME."""
    killed = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                mine = f"HOME={home}".encode() in f.read().split(b"\0")
            if mine and int(pid) != os.getpid():
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):
            pass
    return killed
