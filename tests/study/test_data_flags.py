"""``study.run --data`` / ``--val-data``: every bad input is refused before anything runs, in one line naming the
file and the fix (exit 2, no Ray started, nothing written); the flags become the saved plan and resume by it."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import ray
from PIL import Image

from datamodules.cli import UsageError
from results.plan import STUDY_FILE, StudyConfig
from study.request import parse, study_config
from study.run import main
from study.tuner import class_frequencies
from tests.helpers.datasets import curve_label, exported, hand_folder, write_pair
from tests.helpers.study import saved_study

H, W = 24, 96


def _refused(tmp_path, capsys, folder, *extra: str, flag: str = "--data") -> str:
    """Run study.run on ``folder``; it must refuse in one line, start no Ray and write no study. Returns the line."""
    storage = tmp_path / "runs"
    argv = ["--task", "binary", flag, str(folder), "--storage", str(storage), "--name", "s", "--no-dashboard", *extra]
    assert main(argv) == 2
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert not ray.is_initialized()
    assert not (storage / "s").exists()
    assert lines[0].startswith("study.run: error: ") and "fix:" in lines[0]
    return lines[0]


def test_a_truncated_png(tmp_path, capsys):
    root = hand_folder(tmp_path / "d")
    image = root / "images" / "scan_1.png"
    image.write_bytes(image.read_bytes()[:-30])
    line = _refused(tmp_path, capsys, root)
    assert f"{image}: truncated" in line and "export it again" in line


def test_an_image_without_a_label(tmp_path, capsys):
    root = hand_folder(tmp_path / "d")
    (root / "labels" / "scan_2.png").unlink()
    line = _refused(tmp_path, capsys, root)
    assert f"{root / 'images' / 'scan_2.png'}: no label {root / 'labels' / 'scan_2.png'}" in line


def test_a_label_of_another_size(tmp_path, capsys):
    root = hand_folder(tmp_path / "d")
    write_pair(root, "scan_1", np.full((H, W), 255), curve_label(H + 1, W))
    line = _refused(tmp_path, capsys, root)
    assert f"{root / 'labels' / 'scan_1.png'}: label is 96 x 25 px but its image scan_1.png is 96 x 24" in line


def test_label_value_7(tmp_path, capsys):
    root = hand_folder(tmp_path / "d")
    label = curve_label(H, W)
    label[3, 3:5] = 7
    write_pair(root, "scan_0", np.full((H, W), 255), label)
    line = _refused(tmp_path, capsys, root)
    assert "scan_0.png: label values 7 (2 px) are not classes of the binary task" in line and "relabel" in line


def test_an_rgba_label(tmp_path, capsys):
    """An RGBA scan is made grey (layout); an RGBA label is refused: which class would a colour be?"""
    root = hand_folder(tmp_path / "d")
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 3] = 255
    write_pair(root, "scan_1", np.full((H, W), 255), Image.fromarray(rgba, "RGBA"))
    line = _refused(tmp_path, capsys, root)
    assert "scan_1.png: a label must be an 8-bit single-channel PNG" in line and "mode RGBA (with alpha)" in line


def test_a_16_bit_tiff_label(tmp_path, capsys):
    """A 16-bit TIFF scan is stretched to 8 bits (layout); a label saved as a 16-bit TIFF is refused."""
    root = hand_folder(tmp_path / "d")
    (root / "labels" / "scan_1.png").unlink()
    Image.fromarray(curve_label(H, W).astype(np.uint16)).save(root / "labels" / "scan_1.tif")
    line = _refused(tmp_path, capsys, root)
    assert "scan_1.tif: a label must be an 8-bit PNG named NAME.png; fix: save it as scan_1.png" in line


def test_a_40000_px_long_scan_standing_on_end(tmp_path, capsys):
    """40,000 px along depth across the page is windowed (tests/datamodules); down the page it is refused."""
    root = hand_folder(tmp_path / "d")
    write_pair(root, "scan_1", np.full((40_000, 60), 255), curve_label(40_000, 60))
    line = _refused(tmp_path, capsys, root)
    assert "scan_1.png: 60 x 40000 px is taller than 640 px and portrait" in line and "rotate it by 90" in line


def test_an_empty_folder(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    line = _refused(tmp_path, capsys, tmp_path / "d")
    assert f"{tmp_path / 'd' / 'images'}: no such folder; fix: put the scans in" in line


def test_a_folder_that_is_not_readable(tmp_path, capsys, monkeypatch):
    root = hand_folder(tmp_path / "d")
    os.chmod(root, 0)
    if os.geteuid() == 0:  # root reads it anyway: make the listing fail as it would for anyone else
        real = os.scandir

        def scandir(path):
            if os.fspath(path) == str(root):
                raise PermissionError(13, "Permission denied", str(root))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
    try:
        line = _refused(tmp_path, capsys, root, flag="--val-data")
    finally:
        os.chmod(root, 0o755)
    assert f"--val-data: {root}: cannot be read (Permission denied); fix: chmod u+rx" in line


def test_several_problems_are_one_line_pointing_at_the_check(tmp_path, capsys):
    root = hand_folder(tmp_path / "d")
    for name in ("scan_1", "scan_2"):
        (root / "labels" / f"{name}.png").unlink()
    line = _refused(tmp_path, capsys, root)
    assert f"(and 1 more problems: python -m datamodules.check {root} --task binary lists them)" in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "{d}"], "--data hold the labels of one task: give --task binary or --task multiclass"),
        (["--task", "binary", "--data", "{d}", "--scale", "0.1"], "drop --scale"),
        (["--task", "binary", "--metric", "val2_dice_fg"], "it needs --val-data DIR"),
        (["--task", "binary", "--split", "0.5,0.5,0"], "--split divides a --data folder"),
        (["--task", "binary", "--data", "{d}", "--split", "0.5,0.6,0"], "sum to 1"),
    ],
)
def test_contradicting_data_flags(tmp_path, argv, message):
    root = hand_folder(tmp_path / "d")
    argv = [a.format(d=root) for a in argv]
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse([*argv, "--storage", str(tmp_path / "runs"), "--name", "s"])


def test_the_flags_become_the_saved_plan(tmp_path):
    data = exported(tmp_path / "train", "binary", 6)
    val = exported(tmp_path / "val", "binary", 3, rescan=True)
    req = parse(["--task", "binary", "--data", str(data), "--val-data", str(val), "--instances", "5",
                 "--storage", str(tmp_path / "runs"), "--name", "s"])  # fmt: skip
    cfg, _ = study_config(req, gpus_seen=False)
    assert (cfg.data, cfg.val_data, cfg.split) == (str(data), str(val), (0.8, 0.2, 0.0))
    assert cfg.task_presets["binary"].n_instances == 5  # the cap
    assert StudyConfig.from_json(cfg.to_json()) == cfg
    source = cfg.data_source()
    assert source is not None and source.val_data == str(val)
    dm = cfg.task_presets["binary"].datamodule("binary", seed=cfg.seed, source=source)
    assert (len(dm.train_set), len(dm.val_set), len(dm.val2_set)) == (4, 1, 3)
    no_cap = parse(["--task", "binary", "--data", str(data), "--storage", str(tmp_path / "runs"), "--name", "t"])
    assert study_config(no_cap, gpus_seen=False)[0].task_presets["binary"].n_instances == 6  # the folder's


def _names(rasters) -> list[str]:
    return [rasters.name(i) for i in range(len(rasters))]


@pytest.mark.parametrize("on_disk", [False, True])
def test_the_drivers_torch_free_split_and_class_frequencies_are_the_data_modules(tmp_path, on_disk):
    """The driver measures class frequencies on ``TaskPreset.split`` (no torch); the trials train on the data
    module: the same rasters, the same frequencies."""
    if on_disk:
        data, val = exported(tmp_path / "train", "multiclass", 6), exported(tmp_path / "val", "multiclass", 3)
        folders = ["--data", str(data), "--val-data", str(val), "--instances", "5"]
    else:
        folders = ["--instances", "6", "--scale", "0.06"]
    req = parse(["--task", "multiclass", *folders, "--storage", str(tmp_path / "runs"), "--name", "s"])
    cfg, _ = study_config(req, gpus_seen=False)
    preset, source = cfg.task_presets["multiclass"], cfg.data_source()
    dm = preset.datamodule("multiclass", seed=cfg.seed, source=source)
    sets = preset.split("multiclass", seed=cfg.seed, source=source)
    assert sets.n_train == dm.n_train
    assert _names(sets.train) == _names(dm.train_set) and _names(sets.val) == _names(dm.val_set)
    assert (sets.val2 is None) == (dm.val2_set is None) == (not on_disk)
    if sets.val2 is not None and dm.val2_set is not None:
        assert _names(sets.val2) == _names(dm.val2_set)
    frequencies = class_frequencies(cfg, "multiclass")
    assert frequencies is not None and len(frequencies) == 3
    assert frequencies == dm.class_frequencies()


def test_a_plan_from_before_data_flags_still_loads(tmp_path):
    cfg = saved_study(tmp_path)
    text = json.loads((cfg.study_dir / STUDY_FILE).read_text())
    for key in ("data", "val_data", "split"):
        text.pop(key)
    loaded = StudyConfig.from_json(json.dumps(text))
    assert (loaded.data, loaded.val_data, loaded.data_source()) == (None, None, None)


def test_resume_keeps_the_saved_folders(tmp_path):
    data = exported(tmp_path / "train", "binary", 6)
    other = exported(tmp_path / "other", "binary", 6, seed=1)
    cfg = saved_study(tmp_path, data=str(data))
    args = ["--resume", "--name", cfg.name, "--storage", cfg.storage]
    assert parse([*args, "--data", str(data)]).saved.data == str(data)  # repeating the saved value is fine
    with pytest.raises(UsageError, match=f"--data saved {data}, given {other}"):
        parse([*args, "--data", str(other)])
    (data / "labels" / "binary_000002.png").unlink()  # the folder changed since: checked again on resume
    with pytest.raises(UsageError, match=r"binary_000002\.png: no label"):
        parse(args)
