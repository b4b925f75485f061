"""Storage, signal and driver faults, repeated: what the fault tests check once, many times, with the figures.

    python -m bench.faults                              # everything (about 40 min on 2 busy cores)
    python -m bench.faults --only fills --fills 12 --seed 7

Run from the repository root, like all of bench (a dev tool, not part of the package): it drives the CLI with
the tests' ``tests.helpers.driver``. Needs root (it mounts tmpfs file systems). Every scenario runs the real CLI
(``python -m study.run``) with its own HOME and its own study, and frees the space (or makes the storage writable
again) before it resumes:

- ``fills``: the disk fills. Seeded fault points (``study/faults.py``: just before a table write, just before a
  trial's checkpoint, inside Ray's state save) on a 40 MiB tmpfs with tiny rasters, and "natural" fills: the
  issue's study (binary, 4 trials x 6 epochs, the smoke preset) on a tmpfs of a seeded size of 600-1200 KiB that
  fills wherever it fills, then grows to 80 MiB;
- ``readonly``: the storage is remounted read-only after a seeded number of epochs, then read-write;
- ``sigterm``: SIGTERM at a seeded moment after the trials start (what Slurm, Kubernetes and systemd send);
- ``pairs``: two drivers started together on one study, new and both ``--resume`` (on a study stopped by
  SIGTERM), and a SIGKILLed driver whose lock the next ``--resume`` takes over once its heartbeat lapses.

Figures: clean stops (the expected exit status, the one line naming the storage, the reason and the free space
or the signal, the resume command, no traceback), exit statuses, stuck studies (not finished after three
resumes), rows lost (an epoch row seen once and gone later, or a gap in a trial's epochs) and duplicated (a
(trial, epoch) twice, a trial twice, more trials than planned), stale ``running`` rows (right after each stopped
driver, and at the end), errored trials, Ray state fallbacks used.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from results.schema import FINISHED_STATUSES
from tests.helpers.driver import STARTED, Driver, driver_env, kill_orphans

TINY = ["--instances", "6", "--scale", "0.05", "--no-dashboard", "--no-report", "--cpus-per-trial", "1"]
TINY += ["--max-concurrent", "2"]
SEEDED = ["--task", "binary", "--num-samples", "3", "--epochs", "6", *TINY]
ISSUE = ["--task", "binary", "--num-samples", "4", "--epochs", "6", "--no-dashboard", "--no-report"]  # the issue's
LOCK_ENV = {"WELLLOG_STUDY_LOCK_HEARTBEAT_S": "0.5", "WELLLOG_STUDY_LOCK_LAPSE_S": "3"}
EXIT_STORAGE, EXIT_SIGTERM = 74, 143


def start(args: list[str], home: Path, faults: str | None = None) -> Driver:
    """A driver with fast lock heartbeats and, optionally, faults to inject."""
    return Driver(args, home, driver_env(home, {**LOCK_ENV, "WELLLOG_STUDY_FAULTS": faults}))


def run(args: list[str], home: Path, faults: str | None = None) -> Driver:
    driver = start(args, home, faults)
    driver.wait()
    return driver


class Tmpfs:
    def __init__(self, path: Path, size: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
        self.path = path

    def remount(self, *options: str) -> None:
        subprocess.run(["mount", "-o", ",".join(["remount", *options]), str(self.path)], check=True)

    def close(self) -> None:
        if subprocess.run(["umount", str(self.path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def tables(study_dir: Path):
    from results.query import load_epochs, load_trials

    if not (study_dir / "tables" / "trials.parquet").exists():
        return None, None
    epochs = load_epochs(study_dir) if (study_dir / "tables" / "epochs.parquet").exists() else None
    return load_trials(study_dir), epochs


def seen_rows(study_dir: Path) -> set[tuple[str, int]]:
    _, rows = tables(study_dir)
    return set() if rows is None else {(str(t), int(e)) for t, e in zip(rows["trial_id"], rows["epoch"])}


def running_rows(study_dir: Path) -> int:
    trials, _ = tables(study_dir)
    return 0 if trials is None else int((trials["status"] == "running").sum())


def progress(study_dir: Path) -> int:
    return len(seen_rows(study_dir))


@dataclass
class Outcome:
    """One scenario: what the stopped driver(s) did and how the study ended."""

    scenario: str
    stop_codes: list[int] = field(default_factory=list)
    clean_stops: int = 0
    stops: int = 0
    stale_after_stop: int = 0
    resume_codes: list[int] = field(default_factory=list)
    finished: bool = False
    lost: int = 0
    duplicated: int = 0
    stale_at_end: int = 0
    errored: int = 0
    fallbacks: int = 0
    refused_named: int = 0
    refused: int = 0
    takeovers: int = 0
    note: str = ""


def clean_stop(driver: Driver, code: int, storage: Path, expected: int) -> bool:
    out = driver.output
    if code != expected or "Traceback" in out or "--resume --name" not in out:
        return False
    if expected == EXIT_STORAGE:
        lines = [line for line in out.splitlines() if line.startswith("study.run: storage failure:")]
        return len(lines) == 1 and str(storage) in lines[0] and " free" in lines[0]
    return bool(re.search(r"^interrupted \(SIG(TERM|INT)\): ", out, re.M))


def finish(outcome: Outcome, args: list[str], home: Path, study_dir: Path, seen: set, n: int, epochs: int) -> None:
    """Resume (at most three times) until the study ends, then count what was lost, doubled or left running."""
    for attempt in range(3):
        driver = run([*args, "--resume"], home / f"resume{attempt}")
        code = driver.wait()
        outcome.resume_codes.append(code)
        outcome.fallbacks += driver.output.count("restored the last good copy")
        outcome.takeovers += driver.output.count("took over the study lock")
        seen |= seen_rows(study_dir)
        if code == 0:
            break
    trials, rows = tables(study_dir)
    if trials is None:
        outcome.note = "no tables"
        return
    final = Counter((str(t), int(e)) for t, e in zip(rows["trial_id"], rows["epoch"]))
    outcome.duplicated = sum(c - 1 for c in final.values()) + int(trials["trial_id"].duplicated().sum())
    outcome.duplicated += max(0, len(trials) - n)
    outcome.lost = len(seen - set(final))
    for trial_id, done in zip(trials["trial_id"], trials["epochs_completed"]):
        have = sorted(e for t, e in final if t == str(trial_id))
        outcome.lost += len(set(range(1, int(done) + 1)) - set(have))
    outcome.stale_at_end = int((trials["status"] == "running").sum())
    outcome.errored = int((trials["status"] == "error").sum())
    done = trials["status"].isin(FINISHED_STATUSES).sum()
    outcome.finished = bool(outcome.resume_codes[-1] == 0 and done == n and len(trials) == n)
    ran = [d for d in study_dir.glob("binary/trial_*") if (d / "result.json").exists()]
    if len(ran) > n:  # a trial run twice under two ids (an empty folder is a trial that never ran: not counted)
        outcome.duplicated += len(ran) - n
        outcome.note += f" {len(ran) - n} extra trials ran"


def stopped(outcome: Outcome, driver: Driver, storage: Path, study_dir: Path, expected: int, seen: set) -> None:
    code = driver.wait()
    outcome.stops += 1
    outcome.stop_codes.append(code)
    outcome.clean_stops += clean_stop(driver, code, storage, expected)
    outcome.stale_after_stop += running_rows(study_dir)
    seen |= seen_rows(study_dir)


def free_fillers(study_dir: Path) -> None:
    for path in study_dir.rglob(".fault-filler-*"):
        path.unlink()


def scenario_fill(root: Path, rng: random.Random, i: int) -> Outcome:
    kind = ["table", "checkpoint", "state", "natural"][i % 4]
    if kind == "natural":
        size = f"{rng.randrange(600, 1201, 50)}k"
        fs = Tmpfs(root / "store", size)
        storage, args, n = fs.path / "runs", ISSUE, 4
        outcome = Outcome(f"fill natural {size}")
    else:
        fs = Tmpfs(root / "store", "40m")
        storage, args, n = fs.path / "runs", SEEDED, 3
        if kind == "table":
            fault = {"action": "fill", "at": "table", "nth": rng.randint(1, 8)}
        elif kind == "checkpoint":
            fault = {"action": "fill", "at": "checkpoint", "epoch": rng.randint(1, 4), "trials": "one"}
        else:
            fault = {"action": "fill", "at": "state", "nth": rng.randint(2, 4)}
        where = ", ".join(f"{k}={v}" for k, v in fault.items() if k not in ("action", "trials"))
        outcome = Outcome(f"fill {where}")
    study_dir = storage / "s"
    full = ["--storage", str(storage), "--name", "s", *args]
    seen: set = set()
    try:
        spec = None
        if kind != "natural":
            fault["dir"] = str(study_dir)
            spec = root / "faults.json"
            spec.write_text(json.dumps({"markers": str(root / "markers"), "faults": [fault]}))
        driver = start(full, root / "h0", str(spec) if spec else None)
        stopped(outcome, driver, storage, study_dir, EXIT_STORAGE, seen)
        if outcome.stop_codes[-1] == 0:
            outcome.note += " (it fit: no fill)"
        if kind == "natural":
            fs.remount("size=80m")
        free_fillers(study_dir)
        finish(outcome, full, root, study_dir, seen, n, 6)
    finally:
        fs.close()
    return outcome


def scenario_readonly(root: Path, rng: random.Random) -> Outcome:
    fs = Tmpfs(root / "store", "40m")
    storage = fs.path / "runs"
    study_dir = storage / "s"
    full = ["--storage", str(storage), "--name", "s", *SEEDED]
    after = rng.randint(1, 5)
    outcome = Outcome(f"read-only after {after} rows")
    seen: set = set()
    try:
        driver = start(full, root / "h0")
        deadline = time.monotonic() + 600
        while progress(study_dir) < after and driver.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        fs.remount("ro")
        try:
            stopped(outcome, driver, storage, study_dir, EXIT_STORAGE, seen)
        finally:
            fs.remount("rw")
        finish(outcome, full, root, study_dir, seen, 3, 6)
    finally:
        fs.close()
    return outcome


def scenario_sigterm(root: Path, rng: random.Random) -> Outcome:
    storage = root / "runs"
    study_dir = storage / "s"
    full = ["--storage", str(storage), "--name", "s", *SEEDED]
    delay = rng.uniform(0.0, 8.0)
    outcome = Outcome(f"SIGTERM {delay:.1f} s after the first trial starts")
    seen: set = set()
    driver = start(full, root / "h0")
    deadline = time.monotonic() + 600
    while STARTED not in driver.output and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(delay)
    if driver.proc.poll() is None:
        driver.proc.send_signal(signal.SIGTERM)
    stopped(outcome, driver, storage, study_dir, EXIT_SIGTERM, seen)
    finish(outcome, full, root, study_dir, seen, 3, 6)
    return outcome


def _pair(outcome: Outcome, args: list[str], root: Path, tag: str) -> Driver:
    a, b = start(args, root / f"{tag}a"), start(args, root / f"{tag}b")
    while a.proc.poll() is None and b.proc.poll() is None:
        time.sleep(0.1)
    runner, loser = (a, b) if b.proc.poll() is not None else (b, a)
    outcome.refused += loser.wait() == 2
    outcome.refused_named += f"pid {runner.proc.pid} on host" in loser.output and "Traceback" not in loser.output
    return runner


def scenario_pair(root: Path, rng: random.Random, resume: bool) -> Outcome:
    storage = root / "runs"
    study_dir = storage / "s"
    full = ["--storage", str(storage), "--name", "s", *SEEDED]
    outcome = Outcome("two --resume together" if resume else "two new together")
    seen: set = set()
    if resume:  # a study stopped by SIGTERM after a seeded number of epoch rows
        first = start(full, root / "h0")
        after = rng.randint(1, 4)
        while progress(study_dir) < after and first.proc.poll() is None:
            time.sleep(0.1)
        first.proc.send_signal(signal.SIGTERM)
        stopped(outcome, first, storage, study_dir, EXIT_SIGTERM, seen)
    runner = _pair(outcome, [*full, "--resume"] if resume else full, root, "p")
    code = runner.wait()
    outcome.resume_codes.append(code)
    seen |= seen_rows(study_dir)
    if code == 0:
        finish_counts_only(outcome, study_dir, seen, 3)
    else:  # the driver that ran did not finish: resume until it does (a stuck study otherwise)
        finish(outcome, full, root, study_dir, seen, 3, 6)
    return outcome


def finish_counts_only(outcome: Outcome, study_dir: Path, seen: set, n: int) -> None:
    """The figures of a study that already ended (exit 0), without another resume."""
    trials, rows = tables(study_dir)
    final = Counter((str(t), int(e)) for t, e in zip(rows["trial_id"], rows["epoch"]))
    outcome.duplicated = sum(c - 1 for c in final.values()) + max(0, len(trials) - n)
    outcome.duplicated += max(0, sum((d / "result.json").exists() for d in study_dir.glob("binary/trial_*")) - n)
    outcome.lost = len(seen - set(final))
    outcome.stale_at_end = int((trials["status"] == "running").sum())
    outcome.errored = int((trials["status"] == "error").sum())
    outcome.finished = bool(trials["status"].isin(FINISHED_STATUSES).sum() == n)


def scenario_kill(root: Path, rng: random.Random) -> Outcome:
    storage = root / "runs"
    study_dir = storage / "s"
    full = ["--storage", str(storage), "--name", "s", *SEEDED]
    after = rng.randint(1, 4)
    outcome = Outcome(f"SIGKILL after {after} rows, then --resume")
    seen: set = set()
    driver = start(full, root / "h0")
    while progress(study_dir) < after and driver.proc.poll() is None:
        time.sleep(0.1)
    driver.proc.kill()
    driver.wait()
    kill_orphans(root / "h0")
    outcome.stops += 1
    outcome.stop_codes.append(-9)
    outcome.clean_stops += 1  # a SIGKILL has no clean stop to check
    outcome.stale_after_stop += running_rows(study_dir)
    seen |= seen_rows(study_dir)
    time.sleep(3.5)  # the heartbeat lapses
    finish(outcome, full, root, study_dir, seen, 3, 6)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261129, help="seed of the fault points and moments")
    parser.add_argument("--fills", type=int, default=12, help="disk fills (seeded points and natural, in turn)")
    parser.add_argument("--readonly", type=int, default=2, help="read-only remounts")
    parser.add_argument("--sigterms", type=int, default=3, help="SIGTERMs at seeded moments")
    parser.add_argument("--pairs", type=int, default=5, help="pairs of drivers started together, of each kind")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLed drivers whose lock is taken over")
    parser.add_argument("--only", choices=("fills", "readonly", "sigterm", "pairs", "kills"), help="one kind only")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.faults mounts tmpfs file systems: run it as root", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    plan = []
    plan += [("fills", lambda r, i=i: scenario_fill(r, rng, i)) for i in range(args.fills)]
    plan += [("readonly", lambda r: scenario_readonly(r, rng)) for _ in range(args.readonly)]
    plan += [("sigterm", lambda r: scenario_sigterm(r, rng)) for _ in range(args.sigterms)]
    plan += [("pairs", lambda r, k=k: scenario_pair(r, rng, k)) for k in (False, True) for _ in range(args.pairs)]
    plan += [("kills", lambda r: scenario_kill(r, rng)) for _ in range(args.kills)]
    outcomes: list[Outcome] = []
    start = time.monotonic()
    for kind, scenario in plan:
        if args.only and kind != args.only:
            continue
        root = Path(tempfile.mkdtemp(prefix="bench-faults-"))
        try:
            outcome = scenario(root)
        finally:
            kill_orphans(root)
            shutil.rmtree(root, ignore_errors=True)
        outcomes.append(outcome)
        o = outcome
        print(
            f"{o.scenario:38s} stop {o.stop_codes} clean {o.clean_stops}/{o.stops} resume {o.resume_codes} "
            f"refused {o.refused} named {o.refused_named} finished {o.finished} lost {o.lost} dup {o.duplicated} "
            f"running after stop {o.stale_after_stop} at end {o.stale_at_end} errored {o.errored} "
            f"fallbacks {o.fallbacks} takeovers {o.takeovers}{o.note}",
            flush=True,
        )
    print(f"\n{len(outcomes)} scenarios in {(time.monotonic() - start) / 60:.1f} min")
    for name, group in (
        ("disk fills", [o for o in outcomes if o.scenario.startswith("fill")]),
        ("read-only remounts", [o for o in outcomes if o.scenario.startswith("read-only")]),
        ("SIGTERMs", [o for o in outcomes if o.scenario.startswith("SIGTERM")]),
        ("pairs, new", [o for o in outcomes if o.scenario == "two new together"]),
        ("pairs, --resume", [o for o in outcomes if o.scenario == "two --resume together"]),
        ("SIGKILL + takeover", [o for o in outcomes if o.scenario.startswith("SIGKILL")]),
    ):
        if not group:
            continue
        codes = Counter(c for o in group for c in o.stop_codes)
        print(
            f"{name}: {len(group)} runs; clean stops {sum(o.clean_stops for o in group)}/"
            f"{sum(o.stops for o in group)}; stop exit statuses {dict(codes)}; "
            f"resume exit statuses {dict(Counter(c for o in group for c in o.resume_codes))}; "
            f"second drivers refused {sum(o.refused for o in group)} (naming the holder "
            f"{sum(o.refused_named for o in group)}); stuck studies {sum(not o.finished for o in group)}; "
            f"rows lost {sum(o.lost for o in group)}, duplicated {sum(o.duplicated for o in group)}; "
            f"stale running rows after the stop {sum(o.stale_after_stop for o in group)}, at the end "
            f"{sum(o.stale_at_end for o in group)}; errored trials {sum(o.errored for o in group)}; "
            f"state fallbacks {sum(o.fallbacks for o in group)}; lock takeovers {sum(o.takeovers for o in group)}"
        )
    bad = sum(not o.finished or o.lost or o.duplicated or o.stale_at_end or o.errored for o in outcomes)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
