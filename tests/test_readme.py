"""The README's Quickstart and query examples run as written, in a fresh folder, in order; the default study's
console is short and says what its tables say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from results.query import best_trials, load_trials
from results.tables import StudyTables
from tests.helpers.study import REPO, check_optuna_agrees, check_tables, env_for

RUN_SECTIONS = ("Quickstart", "The tables")  # every code block of these runs
CONSOLE_LINES = 60  # the default study's whole console, redirected, at most


def code_blocks(readme: str, sections: tuple[str, ...]) -> list[tuple[str, str]]:
    """(language, code) of every fenced block under the ``## `` headings named, in order."""
    blocks = []
    for part in re.split(r"^## ", readme, flags=re.M)[1:]:
        title, _, body = part.partition("\n")
        if title.strip() in sections:
            blocks += re.findall(r"^```(\w+)\n(.*?)^```", body, flags=re.M | re.S)
    return blocks


def test_the_blocks_are_found():
    blocks = code_blocks((REPO / "README.md").read_text(), RUN_SECTIONS)
    languages = [lang for lang, _ in blocks]
    assert languages[0] == "bash" and "python" in languages
    assert blocks[0][1].splitlines()[0].startswith("python -m study.run --name my-study")


def _commands(code: str) -> list[str]:
    return [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def check_console(out: str, study_dir: Path) -> None:
    """At most CONSOLE_LINES lines, and every trial's outcome, best value and epoch as the tables have them."""
    lines = out.splitlines()
    assert len(lines) <= CONSOLE_LINES, out
    assert not [line for line in lines if "Traceback" in line or "RAY_AUTH_MODE" in line or "Tuner.restore" in line]
    trials = load_trials(study_dir).set_index("trial_id")
    tables = StudyTables(study_dir / "tables", study_dir.name, str(trials["objective"].iloc[0]))
    said = 0
    for line in lines:
        match = re.match(
            r"(\w+) trial (\w+): (completed|stopped early by ASHA) .*best (\w+) ([\d.]+) at epoch (\d+)", line
        )
        if match:
            task, tid, outcome, _, value, epoch = match.groups()
            row = trials.loc[tid]
            assert row["task"] == task
            assert row["status"] == ("completed" if outcome == "completed" else "stopped_early"), line
            assert (int(epoch), round(float(value), 4)) == (row["best_epoch"], round(row["objective_best"], 4)), line
            assert tables.best(tid) == (row["best_epoch"], row["objective_best"])
            said += 1
    assert said == len(trials)  # one closing line per trial
    for task, rows in trials.groupby("task"):
        counts = rows["status"].value_counts().to_dict()
        assert f"  {task}: {len(rows)}/{len(rows)} trials {counts}" in lines, (task, counts)
    for _, best in best_trials(study_dir).iterrows():
        head = (
            f"  best {best['task']}: trial {best['trial_id']} {best['metric']}={best['objective_best']:.4f} "
            f"at epoch {best['best_epoch']}; checkpoint of epoch "
        )
        line = next(line for line in lines if line.startswith(head))
        held = int(Path(best["checkpoint_path"]).name.rpartition("_")[2]) + 1
        assert line == f"{head}{held}: {best['checkpoint_path']}"


@pytest.mark.slow
@pytest.mark.timeout(1500)  # the default study beside another test's Ray on 2 cores
@pytest.mark.long(minutes=6)
def test_quickstart_and_query_examples_run_as_written(tmp_path):
    blocks = code_blocks((REPO / "README.md").read_text(), RUN_SECTIONS)
    env = env_for(tmp_path / "home")
    work = tmp_path / "fresh"
    work.mkdir()
    first = True
    for lang, code in blocks:
        if lang == "bash":
            for command in _commands(code):
                proc = subprocess.run(
                    ["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=900
                )
                assert proc.returncode == 0, (command, proc.stdout[-3000:], proc.stderr[-3000:])
                if first:  # the default study: its console, its tables, Optuna's journals and its report
                    study_dir = work / "runs" / "my-study"
                    trials, _ = check_tables(study_dir, ("binary", "multiclass"), n_trials=4, epochs=6)
                    check_console(proc.stdout + proc.stderr, study_dir)
                    check_optuna_agrees(study_dir, trials)
                    for name in ("param_lr", "param_weight_decay", "param_base_channels", "param_depth"):
                        assert trials[name].notna().all(), name  # every searched parameter, typed
                    assert str(trials["param_depth"].dtype) == "Int64"
                    said = [line for line in proc.stdout.splitlines() if line.startswith("report: ")]
                    assert len(said) == 1 and "report.html" in said[0], said
                    assert "<html" in (study_dir / "report.html").read_text()[:200].lower()
                    first = False
        else:
            proc = subprocess.run(
                [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=300
            )
            assert proc.returncode == 0, (code, proc.stderr[-3000:])
    assert (work / "runs" / "my-study" / "report.html").is_file()
    assert (work / "predictions" / "synthetic-0-binary" / "summary.csv").is_file()
