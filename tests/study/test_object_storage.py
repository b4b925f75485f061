"""A study in object storage (a real S3 server on 127.0.0.1, moto): refused early when the store cannot be
used; on a simulated cluster its every file lives in the bucket, so a driver on another machine (another HOME
and working directory, nothing local) resumes it; a store that fails stops it like a full disk (exit 74), and
``--resume`` finishes it once the store is back."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from results.query import load_trials
from results.store import child, resolve
from study.outcome import checkpoint_text
from study.request import parse
from study.run import main
from tests.assets import make_golden
from tests.helpers.driver import REPO, Driver, driver_env
from tests.helpers.s3 import BUCKET, CREDENTIALS, working_copies
from tests.helpers.study import TINY, check_tables, saved_study

LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # every Ray address stays on 127.0.0.1


def short_tmp() -> Path:
    """A temporary folder of a short path: Ray's sockets under it must stay within AF_UNIX's 107 bytes."""
    return Path(tempfile.mkdtemp(prefix="wl-", dir="/tmp"))


def env(home: Path, tmp: Path) -> dict[str, str]:
    """A driver with its own HOME and temporary folder (where its working copy goes), credentials for the store."""
    return driver_env(home, {**CREDENTIALS, **LOOPBACK, "TMPDIR": str(tmp)})


def wait_for_key(s3, suffix: str, driver: Driver, timeout: float = 300) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and driver.proc.poll() is None:
        if any(k.endswith(suffix) for k in s3.objects()):
            return True
        time.sleep(0.2)
    return False


# -- refused before anything runs --


def test_an_unreachable_store_is_refused_in_one_line(capsys):
    uri = f"s3://{BUCKET}/studies?endpoint_override=127.0.0.1:9&scheme=http"  # nothing listens on port 9
    assert main(["--storage", uri, "--name", "s", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot be reached" in err and "credentials" in err, err


def test_a_missing_bucket_and_a_missing_study_are_refused(s3, capsys):
    missing_bucket = s3.uri().replace(BUCKET, "no-such-bucket")
    assert main(["--storage", missing_bucket, "--name", "s", *TINY]) == 2
    assert "the bucket 'no-such-bucket' does not exist" in capsys.readouterr().err
    assert main(["--storage", s3.uri("refusals"), "--name", "nope", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "no study at s3://" in err and "check --name and --storage" in err


def test_a_resumed_study_is_pulled_into_a_working_copy_and_runs_there(s3, tmp_path):
    storage = s3.uri("pulled")
    cfg = saved_study(tmp_path, remote=storage, name="p")
    make_golden.write(cfg.tables_dir)
    fs, root = resolve(storage)
    pafs.copy_files(str(cfg.study_dir), f"{root}/p", destination_filesystem=fs)
    req = parse(["--storage", storage, "--name", "p", "--resume"])
    assert req.remote == storage and req.storage != Path(cfg.storage)
    assert req.saved is not None and req.saved.study_dir == req.storage / "p"  # never the saver's working copy
    assert (req.storage / "p" / "study.json").is_file() and (req.storage / "p" / "tables" / "trials.parquet").is_file()
    shutil.rmtree(req.storage)


def test_a_checkpoint_in_object_storage_is_named_by_its_epoch_and_its_uri():
    recorded = "bkt/studies/s/binary/trial_a/checkpoint_000003"  # Ray's path on the store
    uri = "s3://bkt/studies/s/binary/trial_a/checkpoint_000003?endpoint_override=h:9000&scheme=http"
    assert checkpoint_text(recorded, uri) == f"checkpoint of epoch 4: {uri}"


# -- on a cluster, resumed from elsewhere --

CLUSTER = textwrap.dedent(
    """
    import sys
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # trials run on the workers
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    print(cluster.address, flush=True)
    sys.stdin.read()  # until the test closes it
    cluster.shutdown()
    """
)


@pytest.mark.slow
@pytest.mark.long(minutes=1.5)
def test_a_study_in_s3_lives_there_and_resumes_from_another_machine(s3, tmp_path):
    cluster_home = tmp_path / "cluster-home"
    cluster = subprocess.Popen(
        [sys.executable, "-c", CLUSTER],
        cwd=REPO,
        env=env(cluster_home, short_tmp()),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        address = cluster.stdout.readline().strip()
        assert address, "the simulated cluster did not start"
        token = cluster_home / ".ray" / "auth_token"
        homes = [tmp_path / "machine-a", tmp_path / "machine-b"]
        for home in homes:  # each machine has the cluster's token, as `ray start` nodes share it
            if token.is_file():
                (home / ".ray").mkdir(parents=True)
                shutil.copy(token, home / ".ray" / "auth_token")
        storage = s3.uri("cluster")
        args = ["--address", address, "--storage", storage, "--name", "c", "--task", "binary"]
        args += ["--num-samples", "2", "--epochs", "3", *TINY]
        tmp_a, tmp_b = short_tmp(), short_tmp()
        first = Driver(args, homes[0], env(homes[0], tmp_a))
        assert wait_for_key(s3, "/c/tables/epochs.parquet", first), first.output[-3000:]
        first.proc.send_signal(signal.SIGTERM)
        assert first.wait(300) == 143, first.output[-3000:]
        assert not working_copies(tmp_a)  # the first machine keeps nothing of the study
        assert f"--resume --name c --storage {storage}" in first.output

        second = subprocess.run(
            [sys.executable, "-m", "study.run", "--storage", storage, "--name", "c", "--resume"],
            cwd=tmp_path,  # another working directory, HOME and temporary folder
            env={**env(homes[1], tmp_b), "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        assert not working_copies(tmp_b)
    finally:
        cluster.stdin.close()
        cluster.wait(120)
    study = child(storage, "c")
    trials, _rows = check_tables(study, ("binary",), n_trials=2, epochs=3)  # every trial once, rows once
    assert trials["node"].nunique() >= 2, trials[["trial_id", "node"]]  # trials ran on both workers
    keys = {k.split("/c/", 1)[1] for k in s3.objects("cluster/c/")}
    for own in ("study.json", "tables/trials.parquet", "tables/epochs.parquet", "optuna/binary.journal"):
        assert own in keys
    assert "binary/tuner.pkl" in keys and any(k.startswith("binary/experiment_state-") for k in keys)
    for trial_id in trials["trial_id"]:
        assert any(k.startswith(f"binary/trial_{trial_id}/checkpoint_") for k in keys), trial_id
    assert load_trials(study)["checkpoint_path"].notna().all()


# -- the store fails mid-study --


@pytest.mark.slow
@pytest.mark.long(minutes=2)
def test_a_store_that_fails_stops_the_study_and_resume_finishes_it(s3, tmp_path):
    home, tmp = tmp_path / "home", short_tmp()
    storage = s3.uri("outage")
    args = ["--storage", storage, "--name", "o", "--task", "binary", "--num-samples", "2", "--epochs", "3", *TINY]
    driver = Driver(args, home, env(home, tmp))
    assert wait_for_key(s3, "/o/tables/epochs.parquet", driver), driver.output[-3000:]
    s3.stop()
    try:
        code = driver.wait(400)
    finally:
        s3.start()
    assert code == 74, driver.output[-3000:]
    assert "storage failure: s3://" in driver.output and "the object store cannot be reached" in driver.output
    assert f"continue with: python -m study.run --resume --name o --storage {storage}" in driver.output
    resumed = subprocess.run(
        [sys.executable, "-m", "study.run", *args[:4], "--resume"],
        cwd=REPO,
        env=env(home, tmp),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    check_tables(child(storage, "o"), ("binary",), n_trials=2, epochs=3)
    assert not working_copies(tmp)
    assert os.environ.get("AWS_EC2_METADATA_DISABLED") == "true"  # nothing reached for a real cloud
