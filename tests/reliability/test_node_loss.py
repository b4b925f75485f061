"""Node loss on a simulated cluster: the trial's node is removed mid-trial, another joins."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.helpers.study import check_tables, script

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from ray.cluster_utils import Cluster
    from study.run import main

    storage, args = Path(sys.argv[1]), sys.argv[2:]
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # trials must run on workers
    first = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    outcome = {}
    driver = threading.Thread(target=lambda: outcome.update(code=main(["--address", cluster.address, *args])))
    driver.start()
    epochs = storage / "n" / "tables" / "epochs.parquet"
    while not epochs.exists() and driver.is_alive():
        time.sleep(0.1)
    cluster.remove_node(first)  # mid-trial: epoch 1 is reported, epoch 2 is training
    print("removed node", flush=True)
    time.sleep(2)
    cluster.add_node(num_cpus=1)
    driver.join()
    cluster.shutdown()
    sys.exit(outcome.get("code", 3))
    """
)


def test_trial_survives_the_loss_of_its_node(tmp_path):
    storage = tmp_path / "shared"
    args = ["--storage", str(storage), "--name", "n", "--task", "binary", "--num-samples", "1", "--epochs", "4"]
    args += ["--instances", "24", "--scale", "0.08", "--no-dashboard", "--no-report", "--cpus-per-trial", "1"]
    proc = script(SCRIPT, [str(storage), *args], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "removed node" in proc.stdout
    trials, rows = check_tables(storage / "n", ("binary",), n_trials=1, epochs=4)
    assert trials["status"].iloc[0] == "completed"
    assert len(rows) == 4  # rows exactly once
    (trial_id,) = trials["trial_id"]
    log = (storage / "n" / "binary" / f"trial_{trial_id}" / "result.json").read_text().splitlines()
    reports = [json.loads(line) for line in log if line.strip()]
    assert len({r["node"] for r in reports}) == 2  # it finished on the node that joined
    assert sorted({r["epoch"] for r in reports}) == [1, 2, 3, 4]
