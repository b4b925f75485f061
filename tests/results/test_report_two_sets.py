"""The report of a study with a second validation set (``--val-data``): both sets side by side, per trial and for
the best one, with the figure; a study without one has no such section."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from results import report
from results.plan import StudyConfig, TaskPreset
from tests.assets import make_golden
from tests.helpers.report_page import parse

GOLDEN = Path(__file__).resolve().parents[1] / "assets" / "v1.2"  # its multiclass trials have val2_* values
PRESET = TaskPreset(40, 1, 0.1, base_channels=(4, 8), depths=(2, 3))


def _study(tmp_path: Path, **changes) -> Path:
    cfg = StudyConfig(
        name=make_golden.STUDY, storage=str(tmp_path), preset="smoke", tasks=("binary", "multiclass"),
        task_presets={"binary": PRESET, "multiclass": PRESET}, epochs=make_golden.BUDGET, num_samples=4,
        max_concurrent=None, gpus_per_trial=0.0, cpus_per_trial=1.0, grace_period=1, reduction_factor=2, seed=0,
        metric=make_golden.OBJECTIVE,
    )  # fmt: skip
    cfg = replace(cfg, **changes)
    cfg.study_dir.mkdir()
    (cfg.study_dir / "study.json").write_text(cfg.to_json())
    shutil.copytree(GOLDEN, cfg.tables_dir)
    return cfg.study_dir


def test_both_sets_side_by_side_per_trial_and_for_the_best(tmp_path):
    study_dir = _study(tmp_path, val_data="/scans/real")
    page = parse(report.write_report(study_dir))
    assert "second validation set" in page.sections["study"].text and "/scans/real" in page.sections["study"].text
    two = page.sections["multiclass-two-sets"]
    text = two.text
    assert "The best trial m2 at its best epoch 6" in text  # m2: the best multiclass val_dice_fg
    for name in ("val_dice_fg", "val2_dice_fg", "gap"):
        assert name in text
    # the best trial's val_dice_fg at epoch 6 is 0.65 * (1 - 0.5**6); the second set's 0.7 of it
    first = 0.65 * (1 - 0.5**6)
    assert f"{first:.4g}" in text and f"{0.7 * first:.4g}" in text and f"{0.7 * first - first:.4g}" in text
    assert len(two.images) == 1
    assert "No finished trial has been validated on the second set yet." in page.sections["binary-two-sets"].text


def test_no_second_set_no_section(tmp_path):
    study_dir = _study(tmp_path)
    (study_dir / "tables" / "epochs.parquet").unlink()  # no val2_* values anywhere
    page = parse(report.write_report(study_dir))
    assert not [name for name in page.sections if name.endswith("two-sets")]


def test_show_prints_the_second_sets_best_metrics(tmp_path):
    from results.show import summary

    blocks = summary(_study(tmp_path, val_data="/scans/real")).split("\n\n")
    binary = next(b for b in blocks if b.startswith("best binary trial: b0"))
    multiclass = next(b for b in blocks if b.startswith("best multiclass trial: m2"))
    assert "second validation set" not in binary  # its trials have no val2_* value
    (line,) = [x for x in multiclass.splitlines() if x.startswith("  best on the second validation set: ")]
    assert "val2_dice_fg=" in line and "val2_loss=" in line
