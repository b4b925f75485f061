"""The dashboard's sign-in, in a subprocess with its own HOME. (A study on several nodes: tests/deploy/test_slurm.py,
tests/study/test_object_storage.py, tests/reliability/test_node_loss.py.)"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import pytest

from tests.helpers.study import REPO, env_for

pytestmark = pytest.mark.slow

DASHBOARD = textwrap.dedent(
    """
    import json, sys
    from study import cluster

    url = cluster.start(cluster.Choice(None), dashboard=True, dashboard_host="127.0.0.1")
    print(json.dumps({"url": url, "token": str(cluster.token_path())}), flush=True)
    sys.stdin.readline()
    cluster.shutdown()
    """
)


def _status(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=20).status
    except urllib.error.HTTPError as exc:
        return exc.code


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket in LISTEN state on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            lines = f.read().splitlines()[1:]
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.add(addr)
    return found


def test_dashboard_is_loopback_only_and_needs_the_token(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", DASHBOARD],
        cwd=REPO,
        env=env_for(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        url, token_file = info["url"], info["token"]
        assert url.startswith("http://127.0.0.1:")
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        with open(token_file) as f:
            token = f.read().strip()
        api = f"{url}/api/cluster_status"
        assert _status(api, None) == 401
        assert _status(api, "not-the-token") == 403
        assert _status(api, token) == 200
        port = int(url.rsplit(":", 1)[1])
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only, no 0.0.0.0 or ::
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=60)
