"""``deploy/slurm/study.sbatch`` run as Slurm runs a batch script, on this machine: bash, with stand-ins for
``srun`` and ``scontrol`` first on PATH (``slurm_standins/``: both "nodes" are this machine, every call is
recorded), a private HOME (Ray's token lives there), Ray's session files in a folder of the job's own and free ports,
so that its two Ray nodes and any other Ray instance on this machine keep out of each other's way."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.helpers.driver import REPO, driver_env

SCRIPT = REPO / "deploy" / "slurm" / "study.sbatch"
STANDINS = Path(__file__).parent / "slurm_standins"
JOB_ID = "4242"
NODES = ("node1", "node2")  # what the scontrol stand-in names
# Ports Ray would otherwise take fixed (the dashboard agent's, the workers' range): random ones, as
# ray.cluster_utils.Cluster gives each of its nodes on one machine. The head without its dashboard.
ANY_PORTS = "--dashboard-agent-listen-port=0 --min-worker-port=0 --max-worker-port=0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


class SlurmJob:
    """One batch job (study ``name`` in ``storage``): ``run`` or ``start`` the script, read the stand-ins' log, and
    find the processes it left (``leftovers``). ``close`` ends those and removes Ray's session folder."""

    def __init__(self, home: Path, storage: Path, name: str) -> None:
        self.home, self.storage, self.name = home, storage, name
        self.log = home / "slurm-calls.log"
        self.ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must stay < 108
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def env(self, restart: int) -> dict[str, str]:
        path = os.pathsep.join([str(STANDINS), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        return driver_env(
            self.home,
            {
                "PATH": path,
                "PYTHONPATH": str(REPO),
                "RAY_TMPDIR": self.ray_tmp,
                "RAY_USAGE_STATS_ENABLED": "0",
                "SLURM_STANDIN_LOG": str(self.log),
                "SLURM_JOB_ID": JOB_ID,
                "SLURM_JOB_NODELIST": "node[1-2]",
                "SLURM_RESTART_COUNT": str(restart),
                "SLURM_CPUS_PER_TASK": "1",  # one CPU per node: two 1-CPU trials at once run one on each node
                "SLURM_GPUS_PER_TASK": "0",
                "STUDY_NAME": self.name,
                "STUDY_STORAGE": str(self.storage),
                "HEAD_PORT": str(free_port()),
                "HEAD_START_ARGS": f"{ANY_PORTS} --include-dashboard=false --ray-client-server-port={free_port()}",
                "WORKER_START_ARGS": ANY_PORTS,
                "NODES_TIMEOUT_S": "240",
            },
        )

    def start(self, args: list[str], restart: int = 0) -> None:
        """The script in the background, its output collected line by line."""
        self.lines = []
        self.proc = subprocess.Popen(
            ["bash", str(SCRIPT), *args],
            cwd=REPO,
            env=self.env(restart),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    def wait(self, timeout: float = 400) -> int:
        """The script's exit status; an AssertionError with its output's tail if it runs past ``timeout``."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"still running after {timeout:.0f} s:\n{self.output[-6000:]}") from None
        if self._reader is not None:
            self._reader.join(10)
        return code

    def run(self, args: list[str], restart: int = 0, timeout: float = 400) -> int:
        self.start(args, restart)
        return self.wait(timeout)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def calls(self, command: str) -> list[str]:
        """The stand-ins' log lines of ``command`` (``srun`` or ``scontrol``), arguments after it."""
        if not self.log.exists():
            return []
        return [line.split(" ", 1)[1] for line in self.log.read_text().splitlines() if line.startswith(command + " ")]

    def leftovers(self, settle: float = 30) -> list[str]:
        """The command lines of processes still running with this job's HOME, once they have had ``settle``
        seconds to end (Ray's processes end a moment after `ray start --block` has)."""
        deadline = time.monotonic() + settle
        while (found := _processes_of(self.home)) and time.monotonic() < deadline:
            time.sleep(0.5)
        return [cmd for _, cmd in found]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        for pid, _ in _processes_of(self.home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.ray_tmp, ignore_errors=True)


def _processes_of(home: Path) -> list[tuple[int, str]]:
    """Processes other than this one whose environment has HOME=home, with their command lines."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"HOME={home}".encode() not in f.read().split(b"\0") or int(pid) == os.getpid():
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                found.append((int(pid), f.read().replace(b"\0", b" ").decode(errors="replace").strip()))
        except OSError:
            pass
    return found
