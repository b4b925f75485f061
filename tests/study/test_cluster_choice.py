"""Which Ray a study runs on: its own local instance unless an address is given (``--address``, ``RAY_ADDRESS``),
never a cluster it finds on the machine, live or stale; an address whose head cannot be reached refused in
seconds; a storage path that not every node of a cluster sees refused before any trial."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from datamodules.cli import Exit, UsageError
from results.query import load_trials
from study import cluster
from study.cluster import ADDRESS_ENV, FLAG, SAVED, Choice
from tests.helpers.driver import REPO, Driver, driver_env
from tests.helpers.study import TINY, script

LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # a simulated cluster's every address on 127.0.0.1
ONE_TRIAL = ["--task", "binary", "--num-samples", "1", "--epochs", "1", *TINY]


def closed_port() -> int:
    """A port nothing listens on (just freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_choose_takes_the_flag_then_the_saved_address_then_ray_address_else_a_new_local_instance(monkeypatch):
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    assert cluster.choose(None, None) == Choice(None)
    assert cluster.choose("local", None) == Choice(None)
    assert cluster.choose(None, "h:1") == Choice("h:1", SAVED)
    monkeypatch.setenv(ADDRESS_ENV, "env:2")
    assert cluster.choose(None, None) == Choice("env:2", ADDRESS_ENV)
    assert cluster.choose(None, "h:1") == Choice("h:1", SAVED)
    assert cluster.choose("auto", "h:1") == Choice("auto", FLAG)
    assert Choice("env:2", ADDRESS_ENV).said == "RAY_ADDRESS=env:2"
    assert Choice("h:1", SAVED).said == "the saved --address h:1"
    monkeypatch.setenv(ADDRESS_ENV, f"127.0.0.1:{closed_port()}")
    with pytest.raises(UsageError, match=r"^RAY_ADDRESS=127\.0\.0\.1:\d+: cannot reach a Ray head at"):
        cluster.reach(cluster.choose(None, None))


@pytest.mark.parametrize(
    ("address", "head"),
    [("head:6379", ("head", 6379)), ("ray://head:10001", ("head", 10001)), ("[::1]:6379", ("::1", 6379))],
)
def test_the_head_of_an_address(address, head):
    assert cluster.head(Choice(address, FLAG)) == head


@pytest.mark.parametrize("address", ["head", "head:port", "ray://head"])
def test_an_address_without_a_port_is_refused(address):
    with pytest.raises(UsageError, match=f"--address {address}: not an address of a Ray head; give HOST:PORT"):
        cluster.head(Choice(address, FLAG))


def others_running() -> int:
    """Ray instances of anyone's running on this machine (Ray's own search, by process)."""
    from ray._private.services import find_gcs_addresses

    find_gcs_addresses.cache_clear()
    return len(find_gcs_addresses())


def test_auto_refuses_the_cluster_last_recorded_here_when_its_head_is_gone(tmp_path, monkeypatch):
    """``auto`` follows Ray: the address ``ray start`` recorded on this machine (here a stale one), unless exactly
    one other Ray instance runs here (Ray's legacy search then picks that one)."""
    if others_running() == 1:
        pytest.skip("exactly one other Ray instance runs on this machine: Ray's auto would pick it")
    port = closed_port()
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    with pytest.raises(UsageError, match=rf"^--address auto found \S+:{port} \(a stale record\? `ray stop` clears"):
        cluster.reach(Choice("auto", FLAG))


def test_auto_means_ray_address_where_it_is_set(monkeypatch):
    port = closed_port()
    monkeypatch.setenv(ADDRESS_ENV, f"127.0.0.1:{port}")
    with pytest.raises(UsageError) as err:
        cluster.reach(Choice("auto", FLAG))
    assert str(err.value).startswith(f"--address auto (RAY_ADDRESS=127.0.0.1:{port}): cannot reach a Ray head at")
    assert "`ray start --head`" in str(err.value) and "firewall" in str(err.value)


def test_auto_with_no_cluster_on_the_machine_is_refused(tmp_path, monkeypatch):
    if others_running():
        pytest.skip("other Ray instances run on this machine: Ray's auto would pick one")
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    with pytest.raises(UsageError, match=r"^--address auto: no running Ray cluster found on this machine; start one"):
        cluster.reach(Choice("auto", FLAG))


def test_an_unreachable_head_is_refused_in_one_line_with_nothing_written(tmp_path):
    address = f"127.0.0.1:{closed_port()}"
    storage = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "study.run", "--storage", str(storage), "--name", "u", "--address", address, *ONE_TRIAL],
        cwd=REPO, env=driver_env(tmp_path / "home"), capture_output=True, text=True,
        timeout=60,  # Ray's own retries would take minutes
    )  # fmt: skip
    assert proc.returncode == Exit.USAGE, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr  # one line
    assert proc.stderr.startswith(f"study.run: error: --address {address}: "), proc.stderr
    assert f"cannot reach a Ray head at {address} (Connection refused)" in proc.stderr
    assert proc.stdout == ""
    assert not storage.exists()


def test_the_refusal_of_an_unshared_storage_names_the_nodes_and_the_storage_needed():
    line = cluster.unshared_message(Path("/data/runs"), ["10.0.0.2 (node 1a2b3c4d) cannot see it"], 3)
    assert line.startswith("--storage /data/runs must be one directory that all 3 nodes of the cluster see")
    assert "10.0.0.2 (node 1a2b3c4d) cannot see it" in line
    assert "a path mounted on every node" in line and "s3://bucket/prefix" in line
    assert "\n" not in line
    assert cluster.needs_shared_path(Path("/data/runs"))
    assert not cluster.needs_shared_path("s3://bucket/prefix")


PROBE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import ray
    from ray.cluster_utils import Cluster
    from datamodules.cli import UsageError
    from study import cluster

    shared = Path(sys.argv[1])
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes.add_node(num_cpus=0)
    nodes.wait_for_nodes()
    ray.init(address=nodes.address)
    try:
        marker = shared / "marker"
        marker.write_text("token-1")
        out = {
            "address": nodes.address,
            "nodes": [cluster.node_name(n) for n in cluster.alive_nodes()],
            "shared": cluster.nodes_missing(marker, "token-1"),
            "unseen": cluster.nodes_missing(shared / "not-on-the-nodes" / "marker", "token-1"),
        }
        out["line"] = cluster.describe(cluster.Choice(nodes.address, "RAY_ADDRESS"), None, Path("t"))
        cluster.check_shared(shared)  # the whole check: passes, leaves no marker behind
        out["left"] = sorted(p.name for p in shared.iterdir())
    finally:
        ray.shutdown()
        nodes.shutdown()
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_the_shared_storage_check_runs_a_task_on_every_node(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    proc = script(PROBE, [str(shared)], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert len(out["nodes"]) == 2
    assert out["shared"] == []  # every node read the token back
    assert sorted(out["unseen"]) == sorted(f"{n} cannot see it" for n in out["nodes"])  # each node, named
    assert out["left"] == ["marker"]
    assert out["line"] == f"Ray: cluster {out['address']} (RAY_ADDRESS={out['address']}), 2 nodes alive, no CPU, no GPU"


OTHER_CLUSTER = textwrap.dedent(
    """
    import json, sys
    from ray.cluster_utils import Cluster

    other = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    other.wait_for_nodes()
    print(json.dumps({"address": other.address, "node_id": other.head_node.node_id}), flush=True)
    for line in sys.stdin:
        if line.strip() == "kill-head":  # Ray's record of the cluster stays: it is stale now
            other.remove_node(other.head_node)
            print("killed", flush=True)
    if other.head_node is not None:
        other.shutdown()
    """
)


@pytest.fixture(scope="module")
def other_cluster(tmp_path_factory):
    """Another Ray cluster on this machine, recorded where ``ray.init()`` looks for one (a private RAY_TMPDIR,
    short for Ray's socket paths): yields (env, record, info, process)."""
    home = tmp_path_factory.mktemp("other-cluster")
    ray_tmp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    env = driver_env(home, {"RAY_TMPDIR": str(ray_tmp), ADDRESS_ENV: None, **LOOPBACK})
    proc = subprocess.Popen(
        [sys.executable, "-c", OTHER_CLUSTER], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        info = json.loads(proc.stdout.readline())
        yield env, ray_tmp / "ray" / "ray_current_cluster", info, proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=120)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def reachable(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return True
    except OSError:
        return False


def run_beside(env: dict[str, str], storage: Path, other_node: str) -> None:
    """The tiny study, without --address: its own local instance, its trial on none of the other cluster's nodes."""
    driver = Driver(["--storage", str(storage), "--name", "s", *ONE_TRIAL], storage.parent, env=env)
    assert driver.wait(timeout=600) == 0, driver.output[-3000:]
    assert driver.lines[0].startswith("Ray: a new local instance, "), driver.output[-3000:]
    (node,) = load_trials(storage / "s")["node"]
    assert node and not other_node.startswith(node.rpartition("/")[2]), (node, other_node)


@pytest.mark.slow
def test_a_study_starts_its_own_ray_beside_another_cluster_on_the_machine(tmp_path, other_cluster):
    env, record, info, _ = other_cluster
    assert record.read_text().strip() == info["address"] and reachable(info["address"])  # ray.init() would join it
    run_beside(env, tmp_path / "runs", info["node_id"])


@pytest.mark.slow
def test_a_study_starts_its_own_ray_while_a_stale_cluster_is_recorded(tmp_path, other_cluster):
    env, record, info, proc = other_cluster
    proc.stdin.write("kill-head\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "killed"
    assert record.read_text().strip() == info["address"] and not reachable(info["address"])  # ray.init() hangs
    run_beside(env, tmp_path / "runs", info["node_id"])
