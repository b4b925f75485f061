"""Storage faults on a real small file system (a tmpfs the test mounts), through the CLI.

One study meets each fault in turn, then finishes: the disk fills just before a table write, then just before a
trial's checkpoint, then inside Ray's state save (the state copy is cut short, as a full disk leaves it), then the
storage is remounted read-only mid-run. After each, space is freed (or the storage made writable again) and
``--resume`` continues. Every stop must be clean (exit 74, one line naming the storage, the reason and the free
space, the resume command, no traceback, no trial retried), and the finished study must hold exactly the planned
trials, each epoch once, no row left ``running``. The repeated runs with figures are in ``bench/faults.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from results.query import load_epochs, load_trials
from study.faults import FILLER
from tests.helpers.study import REPO, TINY, check_tables, env_for, study
from tests.helpers.tmpfs import tmpfs

pytestmark = pytest.mark.slow

TASK = ["--task", "binary", "--num-samples", "2", "--epochs", "6", "--max-concurrent", "2", *TINY]
EXIT_STORAGE = 74


def free_space(study_dir) -> int:
    """Delete the fault's filler files; returns how many there were."""
    fillers = list(study_dir.rglob(f"{FILLER}-*"))
    for path in fillers:
        path.unlink()
    return len(fillers)


def progress(study_dir) -> dict[str, int]:
    if not (study_dir / "tables" / "epochs.parquet").exists():
        return {}
    return load_epochs(study_dir).groupby("trial_id")["epoch"].max().astype(int).to_dict()


def said(proc) -> list[str]:
    """What the driver said in its own lines (shown with pytest -s)."""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("study.run:")]
    print("\n".join(["", f"exit {proc.returncode}", *lines]))
    return lines


def assert_clean_stop(proc, storage, reason: str) -> None:
    said(proc)
    out = proc.stdout + proc.stderr
    assert proc.returncode == EXIT_STORAGE, out[-4000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("study.run: storage failure:")]
    assert len(lines) == 1, proc.stderr[-4000:]
    assert str(storage) in lines[0] and reason in lines[0] and " free" in lines[0], lines[0]
    assert f"--resume --name f --storage {storage}" in proc.stderr
    assert "Traceback" not in out, out[-4000:]
    assert "interrupted" not in proc.stdout  # nothing was interrupted


@pytest.mark.long(minutes=3)
def test_storage_faults_in_turn_each_stop_cleanly_and_resume_finishes(tmp_path):
    with tmpfs(tmp_path / "store", "40m") as fs:
        storage = fs.path / "runs"
        study_dir = storage / "f"
        first = ["--storage", str(storage), "--name", "f", *TASK]
        resume = [*first, "--resume"]

        # 1. The disk fills just before the second epoch row goes to the tables.
        proc = study(first, tmp_path / "h1", faults=[{"action": "fill", "at": "table", "nth": 2}])
        assert_clean_stop(proc, storage, "no space left on device")
        assert "running" not in set(load_trials(study_dir)["status"])  # the reserve took the final statuses
        assert free_space(study_dir) == 1

        # 2. ... just before a trial's next checkpoint is written.
        epoch = max(progress(study_dir).values(), default=0) + 1
        fault = {"action": "fill", "at": "checkpoint", "epoch": epoch, "trials": "one", "dir": str(study_dir)}
        proc = study(resume, tmp_path / "h2", faults=[fault])
        assert_clean_stop(proc, storage, "no space left on device")
        assert "running" not in set(load_trials(study_dir)["status"])
        assert free_space(study_dir) == 1
        # not retried while the disk was full: the trial failed once, then the study stopped
        assert proc.stdout.count("errored after") <= 2

        # 3. ... inside Ray's second state save of the run: the copy of the state is cut short.
        proc = study(resume, tmp_path / "h3", faults=[{"action": "fill", "at": "state", "nth": 2}])
        assert_clean_stop(proc, storage, "no space left on device")
        assert free_space(study_dir) == 1

        # 4. The storage turns read-only mid-run, then writable again.
        before = progress(study_dir)
        driver = subprocess.Popen(
            [sys.executable, "-m", "study.run", *resume],
            cwd=REPO,
            env=env_for(tmp_path / "h4"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 240
        while progress(study_dir) == before and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert driver.poll() is None, "the study finished before the storage turned read-only"
        fs.remount("ro")
        try:
            out, err = driver.communicate(timeout=240)
        finally:
            fs.remount("rw")
        assert_clean_stop(subprocess.CompletedProcess(driver.args, driver.returncode, out, err), storage, "read-only")

        # 5. Resume finishes the study: the damaged state of step 3 was replaced by its last good copy earlier,
        # rows a read-only driver could not settle are marked, nothing is lost or doubled.
        proc = study(resume, tmp_path / "h5")
        said(proc)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        trials, rows = check_tables(study_dir, ("binary",), n_trials=2, epochs=6)
        assert len(rows) == trials["epochs_completed"].sum()
        assert not list(study_dir.rglob(f"{FILLER}-*"))
