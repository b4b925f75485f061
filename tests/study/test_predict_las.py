"""``python -m study.predict`` to LAS: one scan, a synthetic index, a folder; every LAS file conforms and holds
what tracing the model's own logits gives; every bad input is one line and exit status 2. A tiny untrained
checkpoint stands in for a study's (no Ray): what is tested is the path from a model to the files."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.preview import write_png
from datamodules.synth import render_registered
from models.inference import load_checkpoint, logits_of
from models.las import digitise
from study import predict
from tests.helpers.checkpoints import untrained_checkpoint
from tests.helpers.las import assert_round_trip, check_las

SCALE = 0.05


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> dict[str, Path]:
    """Two multiclass scans with their registrations, and an untrained checkpoint of each task."""
    root = tmp_path_factory.mktemp("las-scans")
    images, regs = root / "images", root / "registrations"
    images.mkdir()
    regs.mkdir()
    for index in (3, 4):
        sample, reg = render_registered(index, seed=0, task="multiclass", scale=SCALE)
        write_png(images / f"scan{index}.png", np.repeat(sample.image[:, :, None], 3, axis=2))
        reg.dump(regs / f"scan{index}.json")
    return {
        "root": root,
        "images": images,
        "registrations": regs,
        "multiclass": untrained_checkpoint(root / "multiclass.ckpt", "multiclass", scale=SCALE),
        "binary": untrained_checkpoint(root / "binary.ckpt", "binary", scale=SCALE),
    }


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = predict.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_one_scan_to_las(scans, tmp_path, capsys):
    scan, reg = scans["images"] / "scan3.png", scans["registrations"] / "scan3.json"
    las_path, out = tmp_path / "scan3.las", tmp_path / "out"
    argv = ["--checkpoint", scans["multiclass"], "--image", scan, "--registration", reg, "--las", las_path]
    code, stdout, _ = _run([*argv, "--out", out, "--device", "cpu", "--step", "0.25"], capsys)
    assert code == 0 and str(las_path) in stdout
    las = check_las(las_path)
    assert float(las.well["STEP"].value) == 0.25
    registration = json.loads(reg.read_text())
    names = [c["mnemonic"] for t in registration["tracks"] for c in t["curves"]]
    assert [c.mnemonic for c in las.curves] == ["DEPT", *names]
    # What the file holds is what tracing the model's own logits gives, to 4 significant digits.
    ckpt = load_checkpoint(scans["multiclass"])
    image = predict.read_image(scan)
    sample_reg = render_registered(3, seed=0, task="multiclass", scale=SCALE)[1]
    assert_round_trip(digitise(ckpt.model.mode, logits_of(ckpt, image), sample_reg, 0.25).las, las_path)
    with Image.open(out / "overlay.png") as im:  # the LAS curves drawn back on the scan
        assert im.mode == "RGB" and im.size == (image.shape[1], image.shape[0])


def test_a_synthetic_index_brings_its_own_registration(scans, tmp_path, capsys):
    las_path = tmp_path / "b.las"
    argv = [
        "--checkpoint",
        scans["binary"],
        "--index",
        2,
        "--task",
        "binary",
        "--las",
        las_path,
        "--out",
        tmp_path / "o",
    ]
    code, _, _ = _run(argv, capsys)
    assert code == 0
    las = check_las(las_path)
    assert las.well["WELL"].value == "SYNTHETIC BINARY 2"


def test_a_folder_of_scans(scans, tmp_path, capsys):
    out = tmp_path / "las"
    argv = ["--checkpoint", scans["multiclass"], "--images", scans["images"], "--registrations", scans["registrations"]]
    code, stdout, stderr = _run([*argv, "--out", out], capsys)
    assert code == 0 and "2 scans" in stdout
    assert "2/2" in stderr  # the progress bar
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [Path(r["image"]).name for r in rows] == ["scan3.png", "scan4.png"]
    for row in rows:
        las = check_las(Path(row["las"]))
        assert int(row["curves_registered"]) == len(las.curves) - 1
        assert int(row["samples"]) == (len(las.curves) - 1) * len(las.index)
        nulls = sum(int(np.isnan(np.asarray(c.data)).sum()) for c in las.curves[1:])
        assert int(row["samples_null"]) == nulls
        assert 0.0 <= float(row["mean_confidence"]) <= 1.0
        assert (out / f"{Path(row['image']).stem}.png").is_file()
    code, _, stderr = _run([*argv, "--out", out], capsys)  # never over an earlier run's files
    assert code == 2 and "not empty" in stderr


def _bad_registration(scans, tmp_path: Path, edit) -> Path:
    data = copy.deepcopy(json.loads((scans["registrations"] / "scan3.json").read_text()))
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


def _log_track(data: dict) -> dict:
    return next(c for t in data["tracks"] for c in t["curves"] if c["scale"] == "log")


BAD_REGISTRATIONS = {
    "one depth point": (lambda d: d["depth"].update(points=d["depth"]["points"][:1]), "at least 2"),
    # tracks are listed bottom first: track 1 sits on track 0
    "overlapping tracks": (lambda d: d["tracks"][1].update(bottom=d["tracks"][0]["top"] + 1), "overlap"),
    "a track outside the image": (lambda d: d["tracks"][0].update(bottom=d["image"]["height"] + 5), "outside"),
    "a scale of 0 on a log track": (lambda d: _log_track(d).update(left=0), "log scale needs left and right > 0"),
    "an unknown off-scale rule": (lambda d: d["tracks"][0]["curves"][0].update(offscale="fold"), 'value "fold"'),
    "an image of another size": (lambda d: d["image"].update(width=d["image"]["width"] + 1), "the image is"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_REGISTRATIONS))
def test_a_bad_registration_is_one_line_and_exit_2(scans, tmp_path, capsys, case):
    edit, words = BAD_REGISTRATIONS[case]
    reg = _bad_registration(scans, tmp_path, edit)
    las_path = tmp_path / "x.las"
    argv = ["--checkpoint", scans["multiclass"], "--image", scans["images"] / "scan3.png", "--registration", reg]
    code, stdout, stderr = _run([*argv, "--las", las_path, "--out", tmp_path / "o"], capsys)
    assert code == 2 and stdout == ""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("predict: error: ")]
    assert len(errors) == 1 and words in errors[0], stderr
    assert not las_path.exists()


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--las", "x.las"], "--las needs --registration"),
        (["--registration", "r.json"], "go with --las"),
        (["--step", "0.5"], "go with --las"),
        (["--las", "x.las", "--registration", "REG", "--step", "0"], "--step: must be > 0"),
        (["--las", "x.las", "--registration", "REG", "--min-confidence", "2"], "--min-confidence"),
        (["--registrations", "regs"], "--registrations goes with --images"),
    ],
)
def test_wrong_flag_combinations_are_one_line(scans, tmp_path, capsys, flags, words):
    flags = [str(scans["registrations"] / "scan3.json") if f == "REG" else f for f in flags]
    argv = ["--checkpoint", scans["multiclass"], "--image", scans["images"] / "scan3.png", *flags, "--out", tmp_path]
    code, _, stderr = _run(argv, capsys)
    assert code == 2 and words in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_a_folder_scan_without_its_registration_is_refused(scans, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("scan3.png", "scan9.png"):
        (images / name).write_bytes((scans["images"] / "scan3.png").read_bytes())
    argv = ["--checkpoint", scans["multiclass"], "--images", images, "--registrations", scans["registrations"]]
    code, _, stderr = _run([*argv, "--out", tmp_path / "out"], capsys)
    assert code == 2 and "no registration for scan9.png" in stderr
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_a_folder_scan_of_the_wrong_size_is_refused_before_the_model_runs(scans, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    (images / "scan3.png").write_bytes((scans["images"] / "scan4.png").read_bytes())  # scan4's pixels, scan3's name
    argv = ["--checkpoint", scans["multiclass"], "--images", images, "--registrations", scans["registrations"]]
    code, _, stderr = _run([*argv, "--out", tmp_path / "out"], capsys)
    assert code == 2 and "but the registration is for" in stderr
    assert not (tmp_path / "out").exists()
