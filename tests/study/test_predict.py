"""study.predict on a real study's checkpoints: the three outputs, curves equal to the extraction computed
directly, the same answer from an image file as from the rendered instance, one line and exit 2 for bad input."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.collate import collate
from datamodules.preview import write_png
from datamodules.synth import Sample, render
from models.extraction import candidates_table, class_candidates
from models.inference import CHECKPOINT_FILE
from models.segmenter import Segmenter
from results.query import best_trials
from study import predict

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tiny_study")]  # one tiny study per test worker
REPO = Path(__file__).resolve().parents[2]


def _best(study_dir: Path, task: str) -> Path:
    best = best_trials(study_dir)
    return Path(str(best.loc[best["task"] == task, "checkpoint_path"].iloc[0])) / CHECKPOINT_FILE


def _reference(ckpt_file: Path, image: np.ndarray):
    """The extraction computed directly: checkpoint -> Segmenter -> collate -> logits -> crop -> candidates."""
    ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=True)
    model = Segmenter(**ckpt["hyper_parameters"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    h, w = image.shape
    unlabelled = Sample(image, np.zeros_like(image), np.zeros((0, w), np.float32), np.zeros(0, np.int64),
                        np.zeros((0, 2), np.float32))  # fmt: skip
    batch = collate([unlabelled])  # pads to multiples of 32
    with torch.no_grad():
        logits = model(batch.images)[:, :, :h, :w]  # (1, C, H, W)
    classes = model.mode.predict(logits)[0].numpy()
    table = candidates_table(class_candidates(model.mode, logits)[0], model.mode.curve_classes)
    return classes, table


def _read_outputs(out: Path, shape: tuple[int, int]):
    with Image.open(out / "classes.png") as im:
        assert im.format == "PNG" and im.mode == "P"
        classes = np.asarray(im)
    with Image.open(out / "overlay.png") as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert np.asarray(im).shape == (*shape, 3)
    with open(out / "curves.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["column", "class", "row"]
    return classes, [(int(c), int(k), float(r)) for c, k, r in rows[1:]]


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_predict_writes_the_class_map_overlay_and_the_extracted_curves(tiny_study, tmp_path, capsys, task):
    out = tmp_path / "out"
    argv = ["--best", str(tiny_study), "--task", task, "--index", "5", "--out", str(out), "--device", "cpu"]
    assert predict.main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    image = render(5, seed=0, task=task, scale=0.05).image  # the study's data: seed 0, scale 0.05 (TINY)
    classes, curves = _read_outputs(out, image.shape)
    want_classes, want_curves = _reference(_best(tiny_study, task), image)
    assert classes.shape == image.shape
    np.testing.assert_array_equal(classes, want_classes)
    assert curves == want_curves  # exact: the same extraction, the rows written with repr
    if curves:
        assert {k for _, k, _ in curves} <= set(Segmenter(task).mode.curve_classes)

    # The same raster as an image file, through --checkpoint (a Ray checkpoint directory): the same answer.
    scan = tmp_path / "scan.png"
    write_png(scan, np.repeat(image[:, :, None], 3, axis=2))
    out2 = tmp_path / "out2"
    argv = ["--checkpoint", str(_best(tiny_study, task).parent), "--image", str(scan), "--out", str(out2)]
    assert predict.main(argv) == 0
    classes2, curves2 = _read_outputs(out2, image.shape)
    np.testing.assert_array_equal(classes2, classes)
    assert curves2 == curves


def _one_line_exit_2(argv: list[str], capsys) -> str:
    assert predict.main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert captured.out == ""
    return lines[0]


def test_bad_inputs_exit_2_with_one_line(tiny_study, tmp_path, capsys):
    binary, multiclass = _best(tiny_study, "binary"), _best(tiny_study, "multiclass")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    scan = tmp_path / "scan.png"
    write_png(scan, np.full((40, 64, 3), 255, np.uint8))
    empty = tmp_path / "empty-study"
    empty.mkdir()
    cases = [
        (["--checkpoint", tmp_path / "none.ckpt", "--image", scan], "no such checkpoint"),
        (["--checkpoint", binary, "--image", tmp_path / "none.png"], "no such image"),
        (["--checkpoint", binary, "--image", text], "not an image"),
        (["--checkpoint", scan, "--image", scan], "not a checkpoint"),
        (["--checkpoint", tmp_path, "--image", scan], "holds no checkpoint.ckpt"),
        (["--checkpoint", multiclass, "--index", 3, "--task", "binary"], "is a multiclass model, not binary"),
        (["--checkpoint", binary, "--image", scan, "--task", "multiclass"], "is a binary model, not multiclass"),
        (["--best", tiny_study, "--index", 3], "--task is needed"),
        (["--best", empty, "--task", "binary", "--index", 3], "no such table"),
        (["--checkpoint", binary], "one of the arguments --image --index --images is required"),
        (["--checkpoint", binary, "--index", -1, "--task", "binary"], "must be >= 0"),
        (["--checkpoint", binary, "--image", scan, "--device", "gpu0"], "is not a device"),
    ]
    for argv, words in cases:
        line = _one_line_exit_2(argv, capsys)
        assert words in line, (argv, line)
    assert not Path("predictions").exists() or not any(Path("predictions").iterdir())


def test_predict_imports_no_ray(tiny_study, tmp_path):
    code = (
        "import sys\nfrom study import predict\n"
        "code = predict.main(sys.argv[1:])\n"
        "assert 'ray' not in sys.modules\nsys.exit(code)\n"
    )
    args = ["--best", str(tiny_study), "--task", "binary", "--index", "0", "--out", str(tmp_path / "o")]
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "classes.png", "curves.csv", "overlay.png", "summary.csv"
    ]  # fmt: skip


def _summary(out: Path) -> dict[str, str]:
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    return rows[0]


def test_predict_never_overwrites_and_names_outputs_by_image_and_task(tiny_study, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    image = render(5, seed=0, task="binary", scale=0.05).image
    for name in ("scan.png", "scan.tif"):
        Image.fromarray(image).save(tmp_path / name)
    for task in ("binary", "multiclass"):
        for name in ("scan.png", "scan.tif"):
            assert predict.main(["--best", str(tiny_study), "--task", task, "--image", name]) == 0
    capsys.readouterr()
    folders = sorted(p.name for p in (tmp_path / "predictions").iterdir())
    assert folders == ["scan.png-binary", "scan.png-multiclass", "scan.tif-binary", "scan.tif-multiclass"]
    assert _summary(tmp_path / "predictions" / "scan.png-binary")["warnings"] == ""  # a raster like training's
    before = (tmp_path / "predictions" / "scan.png-binary" / "curves.csv").read_bytes()
    line = _one_line_exit_2(["--best", tiny_study, "--task", "binary", "--image", "scan.png"], capsys)
    assert "exists" in line and "--force" in line
    assert (tmp_path / "predictions" / "scan.png-binary" / "curves.csv").read_bytes() == before  # nothing lost
    assert predict.main(["--best", str(tiny_study), "--task", "binary", "--image", "scan.png", "--force"]) == 0


@pytest.mark.parametrize(
    ("pixels", "words"),
    [
        (np.full((30, 400), 250, np.uint8), "blank"),
        (np.zeros((1, 1), np.uint8), "tiny"),
        (np.tile(np.arange(256, dtype=np.uint8)[:, None], (3, 400)), "height"),  # 768 px: 24 x the tallest
    ],
    ids=["blank", "1x1", "20x-tall"],
)
def test_predict_warns_when_it_doubts(tiny_study, tmp_path, capsys, pixels, words):
    """The study trained on rasters 24-32 px tall (scale 0.05): 1 x 1, blank and 20 times taller ones warn."""
    scan = tmp_path / "odd.png"
    Image.fromarray(pixels).save(scan)
    out = tmp_path / "out"
    assert predict.main(["--best", str(tiny_study), "--task", "binary", "--image", str(scan), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"predict: warning: {words}" in captured.err
    assert "1 warning" in captured.out or "warnings" in captured.out
    assert words in _summary(out)["warnings"]


def test_a_colour_scan_warns(tiny_study, tmp_path, capsys):
    rgb = np.repeat(render(5, seed=0, task="binary", scale=0.05).image[:, :, None], 3, axis=2)
    rgb[..., 0] = 255  # a red cast: a colour scan
    scan = tmp_path / "colour.png"
    write_png(scan, rgb)
    assert (
        predict.main(
            ["--best", str(tiny_study), "--task", "binary", "--image", str(scan), "--out", str(tmp_path / "o")]
        )
        == 0
    )
    assert "predict: warning: colour" in capsys.readouterr().err
