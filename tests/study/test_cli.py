"""Bad input: exit 2, one line, nothing written, no Ray process or token file, before Ray starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from study.run import main, parse, study_config
from tests.helpers.study import saved_study

REPO = Path(__file__).resolve().parents[2]


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--task", "segmentation"], "--task"),
        (["--num-samples", "0"], "--num-samples"),
        (["--num-samples", "-3"], "--num-samples"),
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "two"], "--epochs"),
        (["--max-concurrent", "0"], "--max-concurrent"),
        (["--cpus-per-trial", "-0.5"], "--cpus-per-trial"),
        (["--cpus-per-trial", "0"], "--cpus-per-trial"),
        (["--gpus-per-trial", "-1"], "--gpus-per-trial"),
        (["--gpus-per-trial", "nan"], "--gpus-per-trial"),
        (["--metric", "accuracy"], "--metric"),
        (["--metric", "train_loss"], "--metric"),
        (["--scale", "3"], "--scale"),
        (["--instances", "1"], "--instances"),
        (["--name", "../escape"], "--name"),
        (["--storage", "s3://bucket/x"], "--storage"),
        (["--resume"], "--resume"),
        (["--preset", "huge"], "--preset"),
        (["--compile", "maybe"], "--compile"),
        (["--max-failures", "-1"], "--max-failures"),
        (["--max-failures", "two"], "--max-failures"),
    ],
)
def test_bad_flags_exit_2_with_one_line_and_write_nothing(argv, needle, tmp_path, home, capsys):
    storage = tmp_path / "runs"
    code, _out, err = _run([*argv, "--storage", str(storage)] if "--storage" not in argv else argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert "Traceback" not in err
    assert not storage.exists()
    assert not (home / ".ray").exists()  # no token file: Ray never started


def test_existing_study_without_resume_is_refused_and_untouched(tmp_path, home, capsys):
    study = tmp_path / "runs" / "s1"
    study.mkdir(parents=True)
    (study / "study.json").write_text("{}")
    before = sorted(p.name for p in study.iterdir())
    code, _, err = _run(["--storage", str(tmp_path / "runs"), "--name", "s1"], capsys)
    assert code == 2
    assert "already exists" in err
    assert "--resume" in err
    assert sorted(p.name for p in study.iterdir()) == before
    assert (study / "study.json").read_text() == "{}"


def test_resume_of_missing_or_foreign_directory(tmp_path, home, capsys):
    runs = tmp_path / "runs"
    code, _, err = _run(["--storage", str(runs), "--name", "nope", "--resume"], capsys)
    assert code == 2
    assert "no study" in err
    (runs / "plain").mkdir(parents=True)
    code, _, err = _run(["--storage", str(runs), "--name", "plain", "--resume"], capsys)
    assert code == 2
    assert "not a study directory" in err


def test_resume_refuses_a_directory_others_can_write(tmp_path, home, capsys):
    study = tmp_path / "runs" / "shared"
    study.mkdir(parents=True)
    (study / "study.json").write_text("{}")
    study.chmod(0o777)
    code, _, err = _run(["--storage", str(tmp_path / "runs"), "--name", "shared", "--resume"], capsys)
    assert code == 2
    assert "writable by other users" in err
    assert "chmod" in err


def test_resume_accepts_the_same_plan_flags_the_up_arrow_way(tmp_path, home):
    cfg = saved_study(tmp_path)
    argv = ["--task", "binary", "--num-samples", "3", "--epochs", "4", "--instances", "6", "--scale", "0.05",
            "--cpus-per-trial", "1", "--gpus-per-trial", "0", "--seed", "0", "--metric", "val_dice_fg",
            "--preset", "auto", "--storage", str(tmp_path / "runs"), "--name", "x", "--resume"]  # fmt: skip
    req = parse(argv)
    assert req.saved == cfg
    resumed, how = study_config(req, gpus_seen=True)  # auto on a GPU machine still resumes the saved smoke plan
    assert resumed == cfg and resumed.resume
    assert "smoke" in how


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--epochs", "6"], ["--epochs saved 4, given 6"]),
        (["--task", "both"], ["--task saved binary, given both"]),
        (["--num-samples", "3", "--seed", "7", "--scale", "0.1"], ["--seed saved 0, given 7", "--scale saved 0.05"]),
        (["--preset", "full"], ["--preset saved smoke, given full"]),
        (["--max-failures", "0"], ["--max-failures saved 2, given 0"]),  # Ray keeps a study's FailureConfig
    ],
)
def test_resume_refuses_a_changed_plan_naming_both_values(tmp_path, home, capsys, flags, needles):
    cfg = saved_study(tmp_path)
    before = (cfg.study_dir / "study.json").read_text()
    code, _, err = _run([*flags, "--storage", str(tmp_path / "runs"), "--name", "x", "--resume"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    for needle in needles:
        assert needle in err
    assert "--num-samples" not in err  # a repeated, equal flag is not a change
    assert (cfg.study_dir / "study.json").read_text() == before
    assert not (home / ".ray").exists()


_DRIVER_IMPORT = """
import pickle, sys
import ray.cloudpickle as cloudpickle
import study.run
from study.tuner import train_trial
blob = cloudpickle.dumps(train_trial)
loaded = [m for m in ('torch', 'lightning', 'torchmetrics', 'study.trial', 'models.segmenter') if m in sys.modules]
assert not loaded, f'the driver imported {loaded}'
assert pickle.loads(blob) is train_trial and len(blob) < 200, 'Ray gets the trainable by reference'
"""


def test_the_driver_imports_no_torch_and_no_lightning():
    """The driver never trains: importing it (each `python -m study.run`) and pickling the trainable it hands Ray
    load neither torch nor Lightning (about 10 s of import); the trial's worker imports them when it runs."""
    proc = subprocess.run([sys.executable, "-c", _DRIVER_IMPORT], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


_DRIVER_PREPARES = """
import sys
from study import cluster, prepare
from study.request import parse, study_config
from study.tuner import run_settings
req = parse([*sys.argv[1:], '--task', 'both', '--num-samples', '1', '--epochs', '1', '--instances', '6',
             '--scale', '0.05', '--no-dashboard', '--cpus-per-trial', '1'])
machine = cluster.local_resources()  # what run() does for a new local study before Ray starts
cfg, _ = study_config(req, machine.get('GPU', 0.0) > 0, seen_by='this machine')
prepare.check_fits(cfg, machine)
prepare.preflight(cfg)  # the storage estimate: the largest network's checkpoint
settings = [run_settings(cfg, task) for task in cfg.tasks]  # multiclass: class frequencies measured here
assert settings[-1].class_frequencies is not None, 'a class-weighting loss gets measured frequencies'
loaded = [m for m in ('torch', 'lightning', 'torchmetrics') if m in sys.modules]
assert not loaded, f'preparing a study, the driver imported {loaded}'
"""


def test_preparing_a_local_study_imports_no_torch_and_no_lightning(tmp_path):
    """A local study's driver, up to starting Ray: its GPUs (``local_resources``), the plan, the storage estimate
    (``preflight``) and each task's run settings (the multiclass class frequencies) load neither torch nor
    Lightning."""
    argv = ["--storage", str(tmp_path / "runs"), "--name", "s"]
    proc = subprocess.run([sys.executable, "-c", _DRIVER_PREPARES, *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (tmp_path / "runs").exists()  # nothing written, no Ray started


@pytest.mark.slow  # a `python -m study.run` subprocess: Python, Ray and the driver's import take a few seconds
def test_bad_input_starts_no_ray_as_a_command(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "study.run", "--task", "nope", "--storage", str(tmp_path / "runs")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / ".ray").exists()
    assert not (tmp_path / "runs").exists()


def test_max_failures_is_part_of_the_plan_and_an_older_plan_has_the_default(tmp_path, home):
    from results.plan import MAX_FAILURES, StudyConfig

    req = parse(["--task", "binary", "--max-failures", "0", "--storage", str(tmp_path / "runs"), "--name", "y"])
    cfg, _ = study_config(req, gpus_seen=False)
    assert cfg.max_failures == 0
    assert StudyConfig.from_json(cfg.to_json()).max_failures == 0
    older = saved_study(tmp_path)  # its study.json as a version before the flag wrote it: no max_failures
    marker = older.study_dir / "study.json"
    plan = json.loads(marker.read_text())
    del plan["max_failures"]
    marker.write_text(json.dumps(plan))
    resumed = parse(["--storage", str(tmp_path / "runs"), "--name", "x", "--resume", "--max-failures", "2"])
    assert resumed.saved is not None and resumed.saved.max_failures == MAX_FAILURES


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--task", "--preset", "--num-samples", "--epochs", "--max-concurrent", "--gpus-per-trial",
                 "--cpus-per-trial", "--name", "--storage", "--address", "--seed", "--metric", "--resume",
                 "--no-dashboard", "--dashboard-host", "--max-failures"):  # fmt: skip
        assert flag in out


def test_resume_with_a_damaged_table_is_refused_before_ray(tmp_path, home, capsys):
    from results.plan import StudyConfig
    from study.presets import SMOKE

    cfg = StudyConfig(
        name="d", storage=str(tmp_path / "runs"), preset="smoke", tasks=("binary",), task_presets=dict(SMOKE.tasks),
        epochs=2, num_samples=1, max_concurrent=None, gpus_per_trial=0, cpus_per_trial=1, grace_period=1,
        reduction_factor=2, seed=0, metric="val_dice_fg",
    )  # fmt: skip
    cfg.tables_dir.mkdir(parents=True)
    (cfg.study_dir / "study.json").write_text(cfg.to_json())
    damaged = cfg.tables_dir / "epochs.parquet"
    damaged.write_bytes(b"PAR1")
    code, _, err = _run(["--storage", str(tmp_path / "runs"), "--name", "d", "--resume"], capsys)
    assert code == 2
    assert str(damaged.resolve()) in err
    assert len(err.strip().splitlines()) == 1
    assert damaged.read_bytes() == b"PAR1"  # left as it was
    assert not (home / ".ray").exists()


def test_unwritable_storage_is_a_usage_error(tmp_path, home, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    real_access = os.access  # root may write anywhere: ask as an ordinary user would be answered
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    code, _, err = _run(["--storage", str(locked / "runs")], capsys)
    assert code == 2
    assert "not writable" in err
    assert not (locked / "runs").exists()
