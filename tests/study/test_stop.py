"""The driver's signal handling: the first SIGINT or SIGTERM asks Tune to stop, a second stops at once."""

from __future__ import annotations

import signal
import subprocess
import sys

from study.stop import exit_status
from tests.helpers.study import REPO


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
    """`python -m study.run` keeps its handlers to its exit: Ctrl-C while Ray shuts down and the interpreter
    exits, every table written, is said and ignored (the study's exit status stands, the atexit functions run);
    a second one exits at once with 130."""
    code = (
        "import atexit, os, signal, sys\n"
        "from study.stop import STOP\n"
        "STOP.keep_until_exit()\n"
        "STOP.install()\n"
        "STOP.end()  # the study's tables are written\n"
        "STOP.uninstall()  # the end of run()\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "print('survived', flush=True)\n"
        "if sys.argv[1] == 'twice':\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    print('not reached', flush=True)\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "STOP.exit(3)\n"
    )
    once = subprocess.run([sys.executable, "-c", code, "once"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert once.stdout.splitlines() == ["survived", "atexit ran"], once.stdout + once.stderr
    assert "SIGINT received after the study ended: nothing to stop" in once.stderr
    assert "Traceback" not in once.stderr
    assert once.returncode == 3

    twice = subprocess.run([sys.executable, "-c", code, "twice"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert twice.stdout.split() == ["survived"], twice.stdout + twice.stderr
    assert "Traceback" not in twice.stderr
    assert twice.returncode == 130
