"""The token stays out of every file a study writes; resume refuses planted pickles before loading them."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from tests.helpers.study import study


class _Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_token_appears_in_no_log_table_or_study_file(tmp_path):
    storage = tmp_path / "runs"
    args = ["--storage", str(storage), "--name", "tok", "--task", "binary", "--num-samples", "1", "--epochs", "1"]
    proc = study([*args, "--instances", "4", "--scale", "0.05", "--cpus-per-trial", "1"], tmp_path / "home")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    token_file = tmp_path / "home" / ".ray" / "auth_token"
    token = token_file.read_text().strip().encode()
    assert len(token) >= 32
    assert token not in (proc.stdout + proc.stderr).encode()
    session_logs = [Path("/tmp/ray/session_latest/logs")]
    searched = 0
    for root in [storage, *session_logs]:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert token not in path.read_bytes(), f"token found in {path}"
                searched += 1
    assert searched > 20


@pytest.mark.parametrize("where", ["study", "task"])
def test_resume_refuses_writable_study_before_unpickling(tmp_path, where, monkeypatch):
    from study.run import main

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    study_dir = tmp_path / "runs" / "s"
    task_dir = study_dir / "binary"
    task_dir.mkdir(parents=True)
    (study_dir / "study.json").write_text(json.dumps({"name": "s"}))
    marker = tmp_path / "pwned"
    for name in ("tuner.pkl", "searcher-state-x.pkl"):
        (task_dir / name).write_bytes(pickle.dumps(_Planted(marker)))
    (study_dir if where == "study" else task_dir).chmod(0o777)
    code = main(["--storage", str(tmp_path / "runs"), "--name", "s", "--resume"])
    assert code == 2
    assert not marker.exists()
    assert not (tmp_path / "home" / ".ray").exists()
