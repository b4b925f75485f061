"""Shared test set-up: CPU only, single-threaded torch, a private HOME per Ray test."""

from __future__ import annotations

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU is the default device in tests
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)


def pytest_configure(config):
    """Under ``--dist loadgroup`` the tests of one ``xdist_group`` share a worker, so the tiny study is built once.
    pytest-xdist 3.8 marks the group in each test's id, which pytest 9.2 ignores: every worker would then build
    its own study, silently (about 5 minutes each on 2 cores). Refuse that pairing in one line."""
    version = tuple(int(part) for part in pytest.__version__.split(".")[:2] if part.isdigit())
    if getattr(config.option, "dist", "no") == "loadgroup" and version >= (9, 2):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} drops pytest-xdist's test groups (loadgroup): "
            "install the pytest pyproject.toml asks for (pip install -e '.[dev]')"
        )


def pytest_collection_modifyitems(config, items):
    """The tests marked ``long`` first, longest first (``minutes``: about what each takes in CI), then the rest in
    their order: the two test workers share out the long ones at once and end together, instead of one running a
    long test alone at the end (the README's quickstart, the longest, is collected last)."""

    def minutes(item: pytest.Item) -> float:
        mark = item.get_closest_marker("long")
        return 0.0 if mark is None else float(mark.kwargs["minutes"])

    items.sort(key=minutes, reverse=True)  # stable: equal ones keep their order


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """One real tiny study (both tasks, 2 trials x 2 epochs each, real Ray, Optuna and Lightning), shared by the
    report and predict tests. 15 rasters per task leave 3 for validation (the report shows 3). The first binary
    trial to reach epoch 2 fails there on both its attempts (fault injection; --max-failures 1), so the study holds
    an errored trial beside finished ones. Returns the study directory."""
    from tests.helpers.study import TINY, study

    home = tmp_path_factory.mktemp("tiny-study")
    args = ["--storage", str(home / "runs"), "--name", "tiny", "--num-samples", "2", "--epochs", "2", *TINY]
    retries = 1
    args += ["--instances", "15", "--max-failures", str(retries)]  # after TINY's: the last one counts
    faults = [{"action": "raise", "epoch": 2, "trials": "one", "times": 1 + retries}]  # every attempt fails
    proc = study(args, home, faults=faults)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # 1: a trial errored, as injected
    return home / "runs" / "tiny"


@pytest.fixture(scope="module")
def s3():
    """A real S3 server on 127.0.0.1 (moto) with one bucket, for the object-storage tests (tests/helpers/s3.py)."""
    from tests.helpers.s3 import s3_server

    with s3_server() as server:
        yield server
