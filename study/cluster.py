"""Starting or joining Ray: a local instance with its dashboard on loopback, or an existing cluster."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path
from typing import TypedDict

import ray

log = logging.getLogger(__name__)


def token_path() -> Path:
    """Where Ray keeps its authentication token (Ray's default: ~/.ray/auth_token)."""
    return Path.home() / ".ray" / "auth_token"


def secure_token_file() -> Path:
    """Make sure the token exists and only its owner can read it.

    Ray writes the file with the process umask (usually 0644). Creating it ourselves first with mode 0600
    (same format as Ray: 32 random bytes in hex) closes the window in which it is world-readable.
    """
    path = token_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    if stat.S_IMODE(path.stat().st_mode) != 0o600:
        path.chmod(0o600)
    return path


class _Quiet(TypedDict):
    """``ray.init``'s logging arguments, the same for a new cluster and a connection."""

    logging_level: int
    log_to_driver: bool


def start(*, address: str | None, dashboard: bool, dashboard_host: str) -> str | None:
    """Starts a local Ray instance or connects to ``address``; returns the dashboard URL, if any.

    Token authentication stays on: a new local cluster enables it by default and the dashboard then
    answers 401 to requests without the token.
    """
    quiet: _Quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        context = ray.init(address=address, **quiet)
    else:
        secure_token_file()
        context = ray.init(include_dashboard=dashboard, dashboard_host=dashboard_host, **quiet)
        secure_token_file()
    url = context.dashboard_url
    return f"http://{url}" if url and not url.startswith("http") else url


def local_resources() -> dict[str, float]:
    """The CPUs this process may run on and the GPUs torch sees here: what a local Ray instance would offer,
    known without starting it."""
    import torch  # here: only a local study asks, once

    return {"CPU": float(len(os.sched_getaffinity(0))), "GPU": float(torch.cuda.device_count())}


def cluster_resources() -> dict[str, float]:
    return {k: float(v) for k, v in ray.cluster_resources().items()}


def sees_gpus() -> bool:
    return cluster_resources().get("GPU", 0) > 0


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()
