"""``python -m datamodules.check``: every problem one line naming the file and the fix, a summary, exit 2 on any
problem; the same answers from one process or several."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules import check
from datamodules.check import check_folder, main
from tests.helpers.datasets import curve_label, exported, hand_folder, write_pair


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return exported(tmp_path_factory.mktemp("check") / "set", "multiclass", 12)


def test_a_good_folder_passes_with_a_summary(good, capsys):
    assert main([str(good), "--task", "multiclass"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{good}: 12 rasters checked in ") and "train 10, val 2, test 0 (split.csv)" in out[0]
    text = "\n".join(out)
    assert "a study trains and validates on 12 of them" in text
    assert "all fit as they are" in text and "heights 24-32 px" in text
    assert "curve A (solid, dark)" in text and "ignored" in text
    assert "curve truth: 12 from curves/NAME.npz, 0 traced from the label" in text
    assert out[-1].strip() == "no problem"


def test_every_problem_is_one_line_and_the_status_is_2(tmp_path, capsys):
    root = hand_folder(tmp_path / "d", n=4)
    label = curve_label(24, 96)
    label[0, 0] = 7
    write_pair(root, "scan_1", np.full((24, 96), 255), label)  # a value the task lacks
    write_pair(root, "scan_2", np.full((24, 96), 255), curve_label(24, 90))  # another size
    (root / "images" / "scan_3.png").unlink()  # a label without its image
    assert main([str(root), "--task", "binary"]) == 2
    out = capsys.readouterr().out.splitlines()
    problems = [line for line in out if "fix:" in line]
    assert len(problems) == 4  # the split.csv line of scan_3 names its missing image too
    assert any("scan_1.png: label values 7 (1 px)" in p for p in problems)
    assert any("scan_2.png: label is 90 x 24 px but its image scan_2.png is 96 x 24" in p for p in problems)
    assert any("scan_3.png: label without an image" in p for p in problems)
    assert out[-1].strip() == "4 problems: fix them, then check again"


def test_a_long_scan_is_windowed_and_said_so(tmp_path, capsys):
    root = hand_folder(tmp_path / "d", n=2)
    label = curve_label(16, 40_000, rows=(6,))
    write_pair(root, "long", np.where(label > 0, 0, 255), label)
    (root / "split.csv").write_text("scan_0,val\nscan_1,train\nlong,train\n")
    assert main([str(root), "--task", "binary"]) == 0
    assert "1 longer ones are used as 4 windows" in capsys.readouterr().out


def test_the_task_is_checked_against_the_label_values(tmp_path):
    root = hand_folder(tmp_path / "d", n=2)
    write_pair(root, "scan_1", np.full((24, 96), 255), curve_label(24, 96, cls=2))
    result = check_folder(root, "binary")
    assert len(result.problems) == 1 and "or use --task multiclass" in result.problems[0]
    assert not check_folder(root, "multiclass").problems


def test_a_split_with_no_validation_raster_is_a_problem(tmp_path):
    root = hand_folder(tmp_path / "d", n=4)
    assert check_folder(root, "binary", instances=2).used == 2  # the cap keeps a validation raster
    (root / "split.csv").write_text("scan_0,train\nscan_1,train\nscan_2,train\nscan_3,test\n")
    (problem,) = check_folder(root, "binary").problems
    assert "no val raster among the ones a study would use (split.csv)" in problem
    assert check_folder(root, "binary", role="val-data").used == 3  # a second validation set leaves out test


def test_several_processes_answer_as_one(good, monkeypatch):
    one = check_folder(good, "multiclass", workers=1)
    monkeypatch.setattr(check, "PARALLEL_FROM", 1)
    monkeypatch.setattr(check, "PARALLEL_PIXELS", 1)
    two = check_folder(good, "multiclass", workers=2)
    assert one.rasters == two.rasters and one.problems == two.problems == []
