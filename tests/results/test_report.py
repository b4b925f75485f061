"""The study report: every section per task on a real study (errored trial included), a study still running,
one line and exit 2 for a directory that is not a readable study, no Ray, torch only for the predictions."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from datamodules.labels import TASKS
from results import report
from results.importance import IMPORTANCE_FILE, IMPORTANCE_SCHEMA, SAVE_COMMAND
from results.importance import load as load_importances
from results.query import load_trials
from results.schema import EPOCHS_FILE, TRIALS_FILE
from results.tables import write_atomic
from tests.helpers.report_page import CHROMIUM, TASK_SECTIONS, open_in_browser, parse

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "assets" / "v1"  # tables of the first release

pytestmark = pytest.mark.xdist_group("tiny_study")  # the session's tiny study runs once per test worker


@pytest.fixture(scope="session")
def tiny_report(tiny_study, tmp_path_factory) -> Path:
    """The report of the shared tiny study, built once (the browser test reads it too)."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert report.write_report(tiny_study, out) == out
    return out


def _copy(study_dir: Path, tmp_path: Path) -> Path:
    """The plan and tables of a study, without Ray's trial folders (the report reads none of them)."""
    copy = tmp_path / study_dir.name
    copy.mkdir()
    shutil.copy(study_dir / "study.json", copy)
    shutil.copytree(study_dir / "tables", copy / "tables")
    return copy


@pytest.mark.parametrize(("grace", "factor", "budget", "rungs"), [(5, 3, 50, [5, 15, 45]), (1, 2, 6, [1, 2, 4]),
                         (1, 2, 2, [1, 2]), (5, 3, 3, [3])])  # fmt: skip
def test_asha_rungs_are_grace_times_factor_powers_up_to_the_budget(grace, factor, budget, rungs):
    assert report.asha_rungs(grace, factor, budget) == rungs


@pytest.mark.slow
def test_report_of_a_real_study_has_every_section_per_task_and_its_images_decode(tiny_study, tiny_report):
    page = parse(tiny_report)  # decodes every embedded image, and checks its declared size
    assert page.outside == []  # self-contained: nothing to fetch
    assert page.order[0] == "study"
    header = page.sections["study"].text
    assert "python -m study.run --resume --name tiny" in header
    assert f"python -m results.report {tiny_study}" in header
    assert f"tensorboard --logdir {tiny_study}" in header
    assert "rungs at epochs 1, 2" in header
    trials = load_trials(tiny_study)
    assert load_importances(tiny_study) is not None
    for task in TASKS:
        sections = [f"{task}-{name}" for name in TASK_SECTIONS]
        assert [s for s in page.order if s in sections] == sections, page.order
        for name in ("curves", "progress", "cost"):
            assert len(page.sections[f"{task}-{name}"].images) == 1, (task, name)
        importance = page.sections[f"{task}-importance"]
        assert importance.images or "Importance needs" in importance.text
        assert SAVE_COMMAND not in importance.text  # the study kept its importances in its tables
        predictions = page.sections[f"{task}-predictions"]
        assert len(predictions.images) == report.N_PREDICTIONS, predictions.text
        best = trials[(trials["task"] == task) & (trials["status"] != "error")].sort_values("objective_best")
        assert str(best["trial_id"].iloc[-1]) in predictions.text  # the best trial (objective is maximised)
    # The injected fault: one errored binary trial, listed with its error, its curve drawn.
    errored = trials[trials["status"] == "error"]
    assert list(errored["task"]) == ["binary"]
    assert "injected fault" in page.sections["binary-errors"].text
    assert str(errored["trial_id"].iloc[0]) in page.sections["binary-errors"].text
    assert "multiclass-errors" not in page.sections
    # ... and its retry (--max-failures 1) on the record
    assert page.sections["binary-restarts"].text.count("after it raised an error") == 1


@pytest.mark.slow
def test_report_of_a_study_without_its_trials_table_yet(tiny_study, tmp_path):
    copy = _copy(tiny_study, tmp_path)
    (copy / "tables" / TRIALS_FILE).unlink()
    path = report.write_report(copy)
    assert path == copy / "report.html"
    page = parse(path)
    assert "the trials table is not written yet" in page.sections["study"].text
    for task in TASKS:
        assert len(page.sections[f"{task}-curves"].images) == 1  # from the epochs table alone
        assert "No finished trial yet" in page.sections[f"{task}-predictions"].text


@pytest.mark.slow
def test_report_of_a_study_whose_trials_still_run(tiny_study, tmp_path):
    copy = _copy(tiny_study, tmp_path)
    path = copy / "tables" / TRIALS_FILE
    table = pq.read_table(path)
    n = len(table)
    running = table.set_column(
        table.schema.get_field_index("status"), table.schema.field("status"), pa.array(["running"] * n)
    )
    running = running.set_column(
        running.schema.get_field_index("finished_at"),
        running.schema.field("finished_at"),
        pa.nulls(n, running.schema.field("finished_at").type),
    )
    write_atomic(path, running)
    page = parse(report.write_report(copy, tmp_path / "r.html"))
    assert "in progress" in page.sections["study"].text
    for task in TASKS:
        assert len(page.sections[f"{task}-curves"].images) == 1
        assert len(page.sections[f"{task}-progress"].images) == 1
        assert "No finished trial yet" in page.sections[f"{task}-importance"].text
        assert "No finished trial yet" in page.sections[f"{task}-predictions"].text


def test_report_of_a_study_that_has_just_started(tmp_path):
    study_dir = tmp_path / "new"
    study_dir.mkdir()
    (study_dir / "study.json").write_text(json.dumps(_plan("new", tmp_path, metric="val_curve_mae")))
    page = parse(report.write_report(study_dir))
    assert "val_curve_mae (min)" in page.sections["study"].text
    for task in TASKS:
        assert "No epoch reported yet" in page.sections[f"{task}-curves"].text
        assert not any(page.sections[f"{task}-{name}"].images for name in TASK_SECTIONS)


def _golden(tmp_path: Path, importances: list[dict] | None = None) -> Path:
    """A study of the first release's tables (no importances kept), or with ``importances`` as its table."""
    study_dir = tmp_path / "golden"
    study_dir.mkdir(parents=True)
    plan = _plan("golden", study_dir.parent, tasks=TASKS[:1], epochs=6)  # one task: half the page to draw
    (study_dir / "study.json").write_text(json.dumps(plan))
    shutil.copytree(GOLDEN, study_dir / "tables")
    if importances is not None:
        rows = [{"task": "binary", "trials": 2, "computed_at": datetime.now(timezone.utc), **r} for r in importances]
        write_atomic(study_dir / "tables" / IMPORTANCE_FILE, pa.Table.from_pylist(rows, schema=IMPORTANCE_SCHEMA))
    return study_dir


def test_the_report_of_an_older_study_says_how_to_get_its_importances(tmp_path):
    study_dir = _golden(tmp_path)
    section = parse(report.write_report(study_dir)).sections["binary-importance"]
    assert f"{SAVE_COMMAND} {study_dir.absolute()} computes and saves them." in section.text
    assert len(section.images) == 1 and "each parameter that varied" in section.text  # the slice plots


def test_the_report_shows_the_importances_the_study_kept(tmp_path):
    study_dir = _golden(tmp_path, [{"param": "lr", "importance": 0.9}, {"param": "depth", "importance": 0.1}])
    page = parse(report.write_report(study_dir))
    binary = page.sections["binary-importance"]
    assert len(binary.images) == 2 and "from 2 finished trials" in binary.text  # the bars, the slice plots
    assert "each important parameter" in binary.text and SAVE_COMMAND not in binary.text
    stale = _golden(tmp_path / "stale", [{"param": "lr", "importance": 1.0, "trials": 1}])
    text = parse(report.write_report(stale)).sections["binary-importance"].text
    assert "from 1 finished trials" in text and f"The tables now hold 2; {SAVE_COMMAND} {stale.absolute()}" in text


def test_a_damaged_importance_table_is_said_in_its_section(tmp_path):
    study_dir = _golden(tmp_path)
    (study_dir / "tables" / IMPORTANCE_FILE).write_bytes(b"PAR1 not a table")
    page = parse(report.write_report(study_dir))
    text = page.sections["binary-importance"].text
    assert f"{IMPORTANCE_FILE}: not an importance table" in text and f"{SAVE_COMMAND} {study_dir.absolute()}" in text
    assert len(page.sections["binary-importance"].images) == 1


def _main(argv, capsys) -> tuple[int, list[str]]:
    code = report.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err.splitlines()


def test_not_a_study_directory_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("hello")
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "study.json").write_text("{not json")
    for argv, words in (
        ([tmp_path / "missing"], "no such study directory"),
        ([tmp_path / "foreign"], "not a study directory (no study.json)"),
        ([tmp_path / "damaged"], "damaged or from another version"),
        ([tmp_path / "foreign", "--bogus"], "unrecognized arguments"),
    ):
        code, lines = _main(argv, capsys)
        assert code == 2
        assert len(lines) == 1 and words in lines[0], lines
    assert sorted(p.name for p in (tmp_path / "foreign").iterdir()) == ["notes.txt"]  # nothing written


@pytest.mark.slow
def test_a_damaged_table_or_unwritable_out_exits_2_with_one_line(tiny_study, tmp_path, capsys):
    copy = _copy(tiny_study, tmp_path)
    epochs = copy / "tables" / EPOCHS_FILE
    epochs.write_bytes(epochs.read_bytes()[:100])
    code, lines = _main([copy], capsys)
    assert code == 2
    assert len(lines) == 1 and EPOCHS_FILE in lines[0] and "damaged" in lines[0], lines
    assert not (copy / "report.html").exists()
    (copy / "tables" / EPOCHS_FILE).unlink()
    code, lines = _main([copy, "--out", tmp_path / "no" / "such" / "dir" / "r.html"], capsys)
    assert code == 2 and len(lines) == 1 and "cannot write" in lines[0], lines


def _plan(name: str, storage: Path, tasks=TASKS, **changes) -> dict:
    """A study.json as study.run writes it (a smoke plan), with ``changes`` over it."""
    plan = {
        "address": None, "cpus_per_trial": 1.0, "dashboard": False, "dashboard_host": "127.0.0.1", "epochs": 6,
        "gpus_per_trial": 0.0, "grace_period": 1, "max_concurrent": None, "metric": "val_dice_fg",
        "name": name, "num_samples": 4, "preset": "smoke", "reduction_factor": 2, "seed": 0,
        "storage": str(storage), "tasks": list(tasks),
        "task_presets": {t: {"base_channels": [4, 8], "batch_size": 1, "depths": [2, 3], "n_instances": 40,
                             "scale": 0.1} for t in tasks},
    }  # fmt: skip
    return {**plan, **changes}


_NO_TORCH = """
import json, sys
from datetime import datetime, timezone
import results.report as r
assert 'torch' not in sys.modules and 'ray' not in sys.modules, 'on import'
from results.tables import StudyTables
study_dir, task, plan = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
json.dump(plan, open(study_dir + '/study.json', 'w'))
t = StudyTables(study_dir + '/tables', 's', 'val_dice_fg', param_types={'lr': float, 'loss': str})
now = datetime.now(timezone.utc)
for i, tid in enumerate(['a', 'b']):
    for epoch in (1, 2)[: 2 - i]:
        t.record_epoch(tid, task, epoch, {'val_dice_fg': 0.1 * epoch + i, 'epoch_seconds': 3.0,
                                          'images_per_second': 5.0, 'pad_fraction': 0.1})
    t.record_trial(tid, task, status=['completed', 'running'][i], params={'lr': 1e-3 * (i + 1), 'loss': 'dice'},
                   epoch_budget=2, devices=1.0, started_at=now, finished_at=None, node='n', checkpoint_path=None)
r.write_report(study_dir)
assert 'ray' not in sys.modules and 'torch' not in sys.modules, 'in write_report'
"""


def test_the_report_imports_no_ray_and_no_torch_without_a_checkpoint_to_apply(tmp_path):
    """Importing the report and building a whole page (figures included) touches neither Ray nor torch; only
    applying a checkpoint loads torch."""
    study_dir = tmp_path / "s"
    study_dir.mkdir()
    plan = _plan("s", tmp_path, tasks=TASKS[:1], epochs=2)
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, str(study_dir), TASKS[0], json.dumps(plan)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = parse(study_dir / "report.html")
    assert "no checkpoint recorded" in page.sections[f"{TASKS[0]}-predictions"].text
    assert len(page.sections[f"{TASKS[0]}-curves"].images) == 1


def _png_writers(tree: ast.AST) -> list[int]:
    """Lines that write an image without Pillow: matplotlib's savefig/imsave/print_png."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, (ast.Attribute, ast.Name))
        and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
        in ("savefig", "imsave", "print_png", "print_figure")
    ]


def test_every_png_the_product_writes_goes_through_pillow():
    found = [
        f"{p.relative_to(REPO)}:{line}"
        for package in ("study", "models", "datamodules", "results", "bench")
        for p in sorted((REPO / package).rglob("*.py"))
        for line in _png_writers(ast.parse(p.read_text()))
    ]
    assert not found, found
    assert _png_writers(ast.parse("fig.savefig('a.png')\nplt.imsave('b.png', x)")) == [1, 2]


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
def test_the_report_renders_in_a_real_browser_offline(tiny_report, tmp_path):
    shot = tmp_path / "first-section.png"
    seen = open_in_browser(tiny_report, screenshot=shot)
    assert seen.errors == []
    assert seen.requests == []  # nothing fetched: the page is self-contained
    assert seen.sections == parse(tiny_report).order
    assert len(seen.figures) == sum(len(s.images) for s in parse(tiny_report).sections.values()) > 0
    for fig in seen.figures:
        assert fig["complete"] and fig["naturalWidth"] > 0 and fig["width"] > 0 and fig["height"] > 0, fig
    with Image.open(shot) as im:
        assert im.width > 0 and im.height > 0
