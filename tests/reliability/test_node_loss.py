"""Node loss on a simulated cluster: a trial's node is removed while it trains, a fresh node joins.

Two small studies run one after the other in ONE simulated cluster (head without CPUs, so trials run on
worker nodes only; starting the cluster is most of the cost). In each, the node the trial runs on is removed
while it trains a seeded epoch (once the epoch before is in the tables, so its checkpoint is with Tune) and a
fresh node joins. The trial must go on from that checkpoint on the fresh node, and the record must say so.

The storage is a parameter: ``node_losses`` takes the ``--storage`` argument and a way to read a study as the
storage holds it, so another storage (an object store) runs the same checks.
"""

from __future__ import annotations

import json
import random
import textwrap
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from results.schema import NODE_LOST
from results.store import child, download
from tests.helpers.s3 import s3_server
from tests.helpers.study import check_tables, reported, reported_epochs, script

pytestmark = pytest.mark.slow

SEEDS = (0, 1)  # lost in epoch 3, then in epoch 2 (lost_at)
EPOCHS = 4


def lost_at(seed: int) -> int:
    """The epoch a study's node is lost in: one with a checkpoint before it and an epoch after it."""
    return random.Random(seed).randint(2, EPOCHS - 1)


SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    import pyarrow.parquet as pq
    import ray
    from pyarrow import fs
    from ray.cluster_utils import Cluster
    from ray.tune import ExperimentAnalysis
    from study.run import main

    storage, plan, args = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
    files, root = fs.FileSystem.from_uri(storage)  # a path, or any URI the storage is

    def rows(name):
        path = f"{root}/{name}/tables/epochs.parquet"
        if files.get_file_info(path).type == fs.FileType.NotFound:
            return 0
        try:
            with files.open_input_file(path) as f:  # replaced atomically: a whole old or new file
                return pq.read_metadata(f).num_rows
        except (OSError, ValueError):  # replaced between the size this read took and its footer read: poll again
            return 0

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # trials must run on workers
    node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    for study in plan:
        name, epoch = study["name"], study["epoch"]
        outcome = {}
        argv = ["--address", cluster.address, "--storage", storage, "--name", name, *study["args"], *args]
        driver = threading.Thread(target=lambda: outcome.update(code=main(argv)))
        driver.start()
        while rows(name) < epoch - 1 and driver.is_alive():  # epoch - 1 reported: epoch is training
            time.sleep(0.05)
        lost = node.node_id
        cluster.remove_node(node)
        node = cluster.add_node(num_cpus=1)
        driver.join()
        ray.init(address=cluster.address, logging_level="WARNING")  # what Ray counted against the trial's retries
        (trial,) = ExperimentAnalysis(f"{root}/{name}/binary", storage_filesystem=files).trials
        ray.shutdown()
        done = {"study": name, "lost": lost, "code": outcome.get("code"), "failures": trial.num_failures}
        print(json.dumps(done), flush=True)
    cluster.shutdown()
    """
)


def node_losses(tmp_path: Path, storage: str, study_dir: Callable[[str], Path], seeds: tuple[int, ...] = SEEDS) -> None:
    """Runs a study per seed with ``--storage storage`` and checks each; ``study_dir(name)`` is a local
    directory holding the study as the storage has it (its tables and Ray's result logs)."""
    plan = [{"name": f"lost{seed}", "epoch": lost_at(seed), "args": ["--seed", str(seed)]} for seed in seeds]
    plan[-1]["args"].append("--verbose")  # Ray's own closing lines too: they must not call the trial errored
    args = ["--task", "binary", "--num-samples", "1", "--epochs", str(EPOCHS), "--instances", "24"]
    args += ["--scale", "0.08", "--no-dashboard", "--no-report", "--cpus-per-trial", "1"]
    proc = script(SCRIPT, [storage, json.dumps(plan), *args], tmp_path, timeout=900)
    out = proc.stdout
    done = [json.loads(line) for line in out.splitlines() if line.startswith('{"study"')]
    assert [d["study"] for d in done] == [p["name"] for p in plan], out[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "Number of errored trials" not in out
    for study, ran in zip(plan, done, strict=True):
        where = f"{study['name']} (node lost in epoch {study['epoch']})"
        assert ran["code"] == 0, where
        assert ran["failures"] == 0, where  # Ray's own count, that FailureConfig(max_failures) is checked against
        local = study_dir(study["name"])
        trials, rows = check_tables(local, ("binary",), n_trials=1, epochs=EPOCHS)
        trial = trials.iloc[0]
        tid = trial["trial_id"]
        assert trial["status"] == "completed", where
        assert len(rows) == EPOCHS, where  # every epoch once
        assert trial["restarts"] == 1 and list(trial["restart_reasons"]) == [NODE_LOST], where
        nodes = list(trial["nodes"])
        assert len(nodes) == 2 and nodes[0] != nodes[1], (where, nodes)
        assert nodes[0].endswith("/" + ran["lost"][:12]), (where, nodes, ran["lost"])  # the lost one first
        assert trial["node"] == nodes[1]
        assert pd.isna(trial["error"]) and pd.isna(trial["error_file"]), where  # it did not error
        # Ray's log: on the fresh node, from a checkpoint on to the last epoch, with at most one epoch run again:
        # the node went once epoch - 1 was in the tables (that epoch's checkpoint may still have been in flight),
        # while epoch trained (it may have ended before the node went). Before it, the lost node's epochs 1.., in
        # order. Ray copies that part back from the storage's copy of its log when a trial restarts, and the copy
        # may lag: the lost node's last reports may be missing from it.
        epochs, on = reported_epochs(local, "binary", tid), reported(local, "binary", tid, "node")
        first = [e for e, n in zip(epochs, on, strict=True) if n == nodes[0]]
        then = [e for e, n in zip(epochs, on, strict=True) if n == nodes[1]]
        assert epochs == first + then and first == list(range(1, len(first) + 1)), (where, epochs)
        assert then == list(range(then[0], EPOCHS + 1)), (where, epochs)
        assert study["epoch"] - 1 <= then[0] <= study["epoch"] + 1, (where, epochs)
        assert f"binary trial {tid} moved from node {nodes[0]} to node {nodes[1]} after the node was lost" in out


@pytest.mark.long(minutes=2)
def test_a_trial_survives_the_loss_of_its_node_twice_in_one_cluster(tmp_path):
    shared = tmp_path / "shared"  # every simulated node is this machine: a local path is shared storage
    node_losses(tmp_path, str(shared), lambda name: shared / name)


@pytest.mark.timeout(900)
@pytest.mark.long(minutes=1.5)
def test_a_trial_survives_the_loss_of_its_node_with_the_study_in_s3(tmp_path):
    """The same loss (the first seed's) with the study in object storage (a real S3 server on 127.0.0.1): the trials'
    checkpoints, Ray's state and the tables all live in the bucket; each study is read back from there."""
    with s3_server() as s3:
        storage = s3.uri("node-loss")

        def from_store(name: str) -> Path:
            view = tmp_path / "from-store" / name
            download(child(storage, name), view)
            return view

        node_losses(tmp_path, storage, from_store, seeds=SEEDS[:1])
