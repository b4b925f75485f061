"""The device scripts parse (bash -n): they only run on the GPU machine, so a syntax error would cost a lease."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[2] / "bench").glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_the_device_scripts_are_there():
    assert {"gpu_check.sh", "gpu_study.sh", "device_wheelhouse.sh"} <= {p.name for p in SCRIPTS}
