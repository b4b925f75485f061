"""The LAS figures a study keeps (``results.las_scores``): written atomically, a task's rows replaced, read back
with their schema, and shown by the report only when the table holds the task."""

from __future__ import annotations

import json
import math

import pandas as pd
import pyarrow.parquet as pq

from datamodules.labels import TASKS
from results import las_scores, report
from results.las_scores import LAS_SCORES_SCHEMA, LasScore
from tests.helpers.report_page import parse

PLAN = {  # a smoke plan as study.run writes it
    "address": None, "cpus_per_trial": 1.0, "dashboard": False, "dashboard_host": "127.0.0.1", "epochs": 6,
    "gpus_per_trial": 0.0, "grace_period": 1, "max_concurrent": None, "metric": "val_dice_fg", "name": "s",
    "num_samples": 4, "preset": "smoke", "reduction_factor": 2, "seed": 0, "tasks": list(TASKS),
    "task_presets": {t: {"base_channels": [4, 8], "batch_size": 1, "depths": [2, 3], "n_instances": 40,
                         "scale": 0.1} for t in TASKS},
}  # fmt: skip


def _score(task: str, kind: str, r2: float, source: str = "model") -> LasScore:
    trial = "t1" if source == "model" else None
    return LasScore(task, source, trial, kind, "GAPI", 3, 0.98, 0.02, r2, 1.5, r2, 1.7, 50, 0.5, 0, 0.5)


def test_a_tasks_figures_replace_its_old_ones_and_keep_the_other_tasks(tmp_path):
    las_scores.record(tmp_path, "binary", [_score("binary", "GR", 0.5)])
    las_scores.record(tmp_path, "multiclass", [_score("multiclass", "SP", 0.7)])
    path = las_scores.record(tmp_path, "binary", [_score("binary", "GR", 0.9), _score("binary", "GR", 0.99, "perfect")])
    assert pq.read_schema(path).remove_metadata() == LAS_SCORES_SCHEMA
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind
    table = las_scores.load(tmp_path)
    assert table is not None
    by = {(r.task, r.source): r for r in table.itertuples()}
    assert set(by) == {("binary", "model"), ("binary", "perfect"), ("multiclass", "model")}
    assert by[("binary", "model")].r2_las == 0.9 and by[("multiclass", "model")].r2_las == 0.7
    assert pd.isna(by[("binary", "perfect")].trial_id)


def test_the_report_shows_the_las_figures_of_a_task_that_has_them(tmp_path):
    study_dir = tmp_path / "s"
    study_dir.mkdir()
    (study_dir / "study.json").write_text(json.dumps({**PLAN, "storage": str(tmp_path)}))
    assert las_scores.load(study_dir) is None
    page = parse(report.write_report(study_dir))
    assert not any(f"{task}-las" in page.sections for task in TASKS)  # no table: no section
    las_scores.record(study_dir, "binary", [_score("binary", "RES_DEEP", 0.987654), _score("binary", "GR", math.nan)])
    page = parse(report.write_report(study_dir))
    text = page.sections["binary-las"].text
    assert "LAS figures" in text and "RES_DEEP" in text and "0.9877" in text and "t1" in text
    assert "multiclass-las" not in page.sections
