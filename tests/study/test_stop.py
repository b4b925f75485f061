"""The driver's signal handling: the first SIGINT or SIGTERM asks Tune to stop, a second stops at once."""

from __future__ import annotations

import signal
import subprocess
import sys

from study.stop import exit_status
from tests.study.helpers import REPO


def test_exit_statuses_follow_the_shell():
    assert exit_status(signal.SIGINT) == 130
    assert exit_status(signal.SIGTERM) == 143


def test_stop_first_signal_asks_second_stops_at_once():
    """The driver's signal handling in a child process: SIGTERM noted and passed on, a second one raises."""
    code = (
        "import os, signal\n"
        "from study.stop import STOP\n"
        "asked = []\n"
        "STOP.install()\n"
        "signal.signal(signal.SIGUSR1, lambda *a: asked.append(1))  # stands in for Tune's handler\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "assert STOP.signum == signal.SIGTERM and asked == [1], (STOP.signum, asked)\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    raise SystemExit('second signal did not stop')\n"
        "except KeyboardInterrupt:\n"
        "    pass\n"
        "STOP.uninstall()\n"
        "assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # this process untouched


def test_a_signal_after_the_study_ended_is_said_not_a_death_by_signal():
    """`python -m study.run` keeps its handlers to exit: Ctrl-C while the interpreter exits, with every table
    written, is said and ignored (the study's exit status stands); a second one exits at once with 130."""
    code = (
        "import os, signal\n"
        "from study.stop import STOP\n"
        "STOP.keep_until_exit()\n"
        "STOP.install()\n"
        "STOP.uninstall()  # the end of run()\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "print('survived', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "print('not reached', flush=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["survived"], proc.stdout + proc.stderr
    assert "SIGINT received after the study ended: nothing to stop" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 130
