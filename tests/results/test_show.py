"""python -m results.show: summary on a good study, one line and exit 2 on a bad one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from results.show import main
from tests.assets import make_golden

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    study_dir = tmp_path_factory.mktemp("golden")
    make_golden.write(study_dir / "tables")
    return study_dir


def test_prints_best_trial_per_task(study, capsys):
    assert main([str(study)]) == 0
    out = capsys.readouterr().out
    assert "best binary trial: b0 (completed), val_dice_fg = 0.7875 at epoch 6" in out
    assert "best multiclass trial: m2 (completed)" in out
    assert "params: lr=0.001, base_channels=16, depth=4, loss=bce" in out
    assert "pos_weight" not in out.split("best binary trial")[1].split("\n")[1]  # null params left out
    assert "early stopping savings" in out
    assert "torch.compile cost" in out
    assert "multiclass: 3 trials, graphs 3-3 per trial, 126 s in all" in out  # 40 + 0.5 per later epoch, 3 trials
    assert "binary:" not in out.split("torch.compile cost")[1]  # eager trials are not listed
    assert str((study / "tables").absolute()) in out


def test_missing_dir_exits_2_with_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no such study directory" in err


def test_corrupt_table_exits_2_with_one_line(study, tmp_path, capsys):
    (tmp_path / "tables").mkdir()
    data = (study / "tables" / "trials.parquet").read_bytes()
    (tmp_path / "tables" / "trials.parquet").write_bytes(data[: len(data) // 2])
    assert main([str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert str((tmp_path / "tables" / "trials.parquet").absolute()) in captured.err
    assert captured.out == ""


def test_module_entry_point_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "results.show", str(tmp_path / "missing")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_storage_folder_lists_its_studies(study, tmp_path, capsys):
    import shutil

    from results.plan import STUDY_FILE, StudyConfig, TaskPreset

    storage = tmp_path / "runs"
    shutil.copytree(study / "tables", storage / "golden" / "tables")
    preset = TaskPreset(4, 1, 0.1, base_channels=(4,), depths=(2, 3))
    plan = StudyConfig("golden", str(storage), "smoke", ("binary", "multiclass"), {"binary": preset,
                       "multiclass": preset}, 6, 4, None, 0.0, 1.0, 1, 2, 0, "val_dice_fg")  # fmt: skip
    (storage / "golden" / STUDY_FILE).write_text(plan.to_json())
    (storage / "empty").mkdir()
    (storage / "empty" / STUDY_FILE).write_text(plan.to_json())
    assert main([str(storage)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"2 studies in {storage.absolute()}:"
    assert out[1].startswith("  empty: binary, multiclass, 4 trials x 6 epochs per task; no trial yet;")
    assert out[2].startswith("  golden: binary, multiclass, 4 trials x 6 epochs per task; ") and "completed" in out[2]
    assert main([str(tmp_path)]) == 2  # no study in it: one line saying so
    assert "holds no study" in capsys.readouterr().err
