"""Which Ray a study runs on, chosen on purpose and said: a new local instance of its own (dashboard on loopback),
or the cluster at an address (``--address``, a resumed study's saved one, or Ray's ``RAY_ADDRESS``).

``choose`` picks, ``reach`` refuses an address whose head cannot be reached in seconds (a TCP probe before Ray
tries), ``start`` starts or joins, ``describe`` is the line that names what it got, and ``check_shared`` refuses a
storage path that some node of a cluster cannot see. A study never joins a cluster it was not given:
``ray.init()`` without an address would join whatever ``ray start`` (or ``ray.cluster_utils.Cluster``) last
recorded in /tmp/ray/ray_current_cluster, and hang on it when it is gone; ``address="local"`` never looks.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import ray
from ray._common.network_utils import parse_address
from ray._private.ray_constants import RAY_ADDRESS_ENVIRONMENT_VARIABLE as ADDRESS_ENV
from ray._private.services import canonicalize_bootstrap_address
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from datamodules.cli import UsageError

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0  # a head that does not accept a TCP connection in this long is not there
SHARED_CHECK_TIMEOUT_S = 120.0  # each node's check starts a worker process there: generous on a loaded node
CHECK_TRIES = 2  # a node that misses the marker is asked once more (a network file system's caches)
# Ray's attempts to reach the GCS of an address, 1 s apart, each up to 30 s (Ray's default is 20 attempts: 10
# minutes and more for a head that accepts connections but never answers). The TCP probe has already found the
# port open; an operator's own RAY_gcs_server_port_wait_time_s is kept.
GCS_WAIT_ENV, GCS_WAIT_S = "RAY_gcs_server_port_wait_time_s", "1"
CHECK_ADVICE = (
    "check that the head is running (`ray start --head` there prints its address), "
    "the port (the head's GCS port, 6379 by default; ray:// addresses use the client port, 10001 by default), "
    "and that no firewall blocks it"
)


FLAG, SAVED = "--address", "saved"  # who named a Choice's address, besides ADDRESS_ENV


@dataclass(frozen=True)
class Choice:
    """The Ray a study runs on: ``address`` None is a new local instance; ``source`` says who named the address."""

    address: str | None
    source: str = ""  # "--address", "RAY_ADDRESS" or "saved" (a resumed study's plan)

    @property
    def said(self) -> str:
        """The address as the user gave it: ``--address X``, ``RAY_ADDRESS=X``, ``the saved --address X``."""
        if self.source == ADDRESS_ENV:
            return f"{ADDRESS_ENV}={self.address}"
        return f"{'the saved ' if self.source == SAVED else ''}--address {self.address}"


def choose(flag: str | None, saved: str | None) -> Choice:
    """``--address``, else a resumed study's saved address, else Ray's ``RAY_ADDRESS``, else a new local instance
    (also for the address ``local``, as Ray reads it). Never an existing cluster found on this machine."""
    for address, source in ((flag, FLAG), (saved, SAVED), (os.environ.get(ADDRESS_ENV), ADDRESS_ENV)):
        if address:
            return Choice(None) if address == "local" else Choice(address, source)
    return Choice(None)


def head(choice: Choice) -> tuple[str, int]:
    """Host and port of the head ``choice`` names, as Ray resolves it (``auto``: ``RAY_ADDRESS``, else the cluster
    ``ray start`` last started on this machine, else a running one found here); UsageError when there is none or
    the address is malformed. Nothing is connected to."""
    address = choice.address or ""
    if address == "auto":
        address = _auto_env()  # as ray.init reads "auto"
    if address == "auto":
        try:
            address = canonicalize_bootstrap_address("auto") or ""
        except ConnectionError:
            raise UsageError(
                f"{choice.said}: no running Ray cluster found on this machine; start one with `ray start --head` "
                "(and `ray start --address HEAD:6379` on the other nodes), or give the head's address HOST:PORT"
            ) from None
    found = parse_address(address.partition("://")[2] or address)  # ray://HOST:PORT is Ray Client's
    host, port = found if found else (address, None)
    if not host or port is None or not port.isdigit():
        raise UsageError(
            f"{choice.said}: not an address of a Ray head; give HOST:PORT (the GCS port, 6379 by default), "
            "ray://HOST:PORT (Ray Client, 10001 by default) or auto"
        )
    return host, int(port)


def reach(choice: Choice) -> None:
    """UsageError, in seconds, when the head ``choice`` names does not accept a TCP connection (nothing else is
    tried: Ray itself would retry for minutes)."""
    host, port = head(choice)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        why = f"no answer in {PROBE_TIMEOUT_S:g} s" if isinstance(exc, TimeoutError) else _reason(exc)
        said, env = choice.said, _auto_env()
        if choice.address == "auto":  # which head auto meant
            stale = f" found {host}:{port} (a stale record? `ray stop` clears it)"
            said += f" ({ADDRESS_ENV}={env})" if env != "auto" else stale
        raise UsageError(f"{said}: cannot reach a Ray head at {host}:{port} ({why}); {CHECK_ADVICE}") from None


def _auto_env() -> str:
    """What ``auto`` means to Ray where ``RAY_ADDRESS`` is set: that address."""
    return os.environ.get(ADDRESS_ENV) or "auto"


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "no such host"
    return exc.strerror or type(exc).__name__


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


@contextmanager
def _bounded_gcs_wait() -> Iterator[None]:
    """Within: Ray makes one attempt to reach an address's GCS (``GCS_WAIT_ENV``), unless the operator set it."""
    if GCS_WAIT_ENV in os.environ:
        yield
        return
    os.environ[GCS_WAIT_ENV] = GCS_WAIT_S
    try:
        yield
    finally:
        os.environ.pop(GCS_WAIT_ENV, None)


def start(choice: Choice, *, dashboard: bool, dashboard_host: str) -> str | None:
    """Starts a new local Ray instance or joins the cluster ``choice`` names; returns the dashboard URL, if any.

    Token authentication stays on: a new local cluster enables it by default and the dashboard then
    answers 401 to requests without the token. Joining: UsageError when the head does not answer (``reach``
    has found its port open).
    """
    quiet: _Quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if choice.address:
        try:
            with _bounded_gcs_wait():
                context = ray.init(address=choice.address, **quiet)
        except ConnectionError as exc:
            if "Unauthenticated" in str(exc.__cause__):  # Ray's token authentication
                raise UsageError(
                    f"{choice.said}: the head refused this driver's token ({exc}); copy the head's "
                    f"{token_path()} to this machine (mode 600), or set RAY_AUTH_TOKEN"
                ) from None
            raise UsageError(
                f"{choice.said}: its port is open but no Ray head answered ({exc}); {CHECK_ADVICE}"
            ) from None
    else:
        secure_token_file()
        context = ray.init(address="local", include_dashboard=dashboard, dashboard_host=dashboard_host, **quiet)
        secure_token_file()
    url = context.dashboard_url
    return f"http://{url}" if url and not url.startswith("http") else url


def _count(n: float, what: str) -> str:
    return f"{n:g} {what}{'' if n == 1 else 's'}" if n else f"no {what}"


def alive_nodes() -> list[dict[str, Any]]:
    return [node for node in ray.nodes() if node.get("Alive")]


def describe(choice: Choice, url: str | None, token: Path) -> str:
    """The line that names the Ray the study runs on: a new local instance, or the cluster with its alive nodes;
    its CPUs and GPUs; the dashboard, when there is one."""
    have = cluster_resources()
    cpus, gpus = _count(have.get("CPU", 0.0), "CPU"), _count(have.get("GPU", 0.0), "GPU")
    if choice.address:
        try:
            gcs = ray.get_runtime_context().gcs_address  # what auto (or localhost) resolved to
        except Exception:  # noqa: BLE001 - a Ray Client connection (ray://) has no GCS address of its own
            gcs = choice.address
        given = f" ({choice.said})" if choice.source != FLAG or gcs != choice.address else ""
        where = f"cluster {gcs}{given}, {_count(len(alive_nodes()), 'node')} alive, {cpus}, {gpus}"
    else:
        where = f"a new local instance, {cpus}, {gpus}"
    seen = f"; dashboard {url}  (sign in with the token in {token}, or `ray get-auth-token`)" if url else ""
    return f"Ray: {where}{seen}"


def node_name(node: Mapping[str, Any]) -> str:
    """A node as ``ray status`` and the dashboard show it: its address and the start of its id."""
    return f"{node.get('NodeManagerAddress', '?')} (node {str(node.get('NodeID', ''))[:8]})"


def needs_shared_path(storage: str | Path) -> bool:
    """Whether every node must see ``storage`` as a path of its own file system (an object store URI is not)."""
    return "://" not in str(storage)


def _read(path: str) -> str | None:
    """On a node: the marker's text, or None when the node cannot read it."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def nodes_missing(marker: Path, token: str, timeout_s: float = SHARED_CHECK_TIMEOUT_S) -> list[str]:
    """The alive nodes on which a Ray task pinned there does not read ``token`` from ``marker`` (or does not
    answer within ``timeout_s``), each named with what went wrong. A task needs no CPU: a busy node answers too."""
    read = ray.remote(num_cpus=0, max_retries=0)(_read)
    failed: list[str] = []
    unseen = alive_nodes()
    for attempt in range(CHECK_TRIES):
        if attempt:
            time.sleep(2.0)
        pinned = [NodeAffinitySchedulingStrategy(node["NodeID"], soft=False) for node in unseen]
        refs = [read.options(scheduling_strategy=where).remote(str(marker)) for where in pinned]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        still = []
        for node, ref in zip(unseen, refs):
            if ref not in done:
                failed.append(f"{node_name(node)} did not answer in {timeout_s:g} s")
                continue
            try:
                seen = ray.get(ref) == token
            except ray.exceptions.RayError as exc:
                failed.append(f"{node_name(node)} could not check ({type(exc).__name__})")
                continue
            if not seen:
                still.append(node)
        unseen = still
        if not unseen:
            break
    return failed + [f"{node_name(node)} cannot see it" for node in unseen]


def unshared_message(storage: str | Path, missing: list[str], nodes: int) -> str:
    """The refusal of a storage path that not all of the cluster's ``nodes`` see (``missing``: who, and how)."""
    return (
        f"--storage {storage} must be one directory that all {nodes} nodes of the cluster see, and it is not: "
        f"{'; '.join(missing)}; give a path mounted on every node (NFS or similar) or an object store URI such "
        "as s3://bucket/prefix"
    )


def check_shared(storage: Path) -> None:
    """On a cluster of more than one node, UsageError unless every node reads back a marker with a random token
    that this driver writes under ``storage`` (a directory that exists). The marker is removed again."""
    nodes = len(alive_nodes())
    if nodes < 2 or not needs_shared_path(storage):
        return
    token = secrets.token_hex(16)
    marker = storage / f".shared-check-{token}"
    marker.write_text(token)
    try:
        missing = nodes_missing(marker, token)
    finally:
        marker.unlink(missing_ok=True)
    if missing:
        raise UsageError(unshared_message(storage, missing, nodes))


VISIBLE_GPUS_ENV = "CUDA_VISIBLE_DEVICES"


def visible_gpus(visible: str | None, node_gpus: int) -> int:
    """How many of a node's ``node_gpus`` NVIDIA GPUs a process sees under ``CUDA_VISIBLE_DEVICES=visible``, read
    as torch reads it (``torch.cuda.device_count``, its NVML path): unset, all of them; ordinals parsed like
    C's strtoul ("1gpu" is 1), the list cut at the first that does not parse or is out of range, and a repeated
    one hiding every GPU; a list of UUIDs ("GPU-..." or "MIG-...") counted up to its first entry without the
    prefix, a repeated one hiding every GPU (torch also drops a UUID that matches no GPU: not checked here)."""
    if node_gpus <= 0:
        return 0
    if visible is None:
        return node_gpus
    if visible.startswith(("GPU-", "MIG-")):
        prefix, uuids = visible[:4], list[str]()
        for elem in visible.split(","):
            if elem in uuids:
                return 0
            if not elem.startswith(prefix):
                break
            uuids.append(elem)
        return min(len(uuids), node_gpus)
    ordinals: list[int] = []
    for elem in visible.split(","):
        digits = re.match(r"[+-]?\d+", elem.strip())
        ordinal = int(digits.group()) if digits else -1
        if ordinal in ordinals:
            return 0
        if ordinal < 0:
            break
        ordinals.append(ordinal)
    for count, ordinal in enumerate(ordinals):
        if ordinal >= node_gpus:
            return count
    return len(ordinals)


def local_resources() -> dict[str, float]:
    """The CPUs this process may run on and the GPUs torch sees here: what a local Ray instance would offer,
    known without starting it.

    The GPUs are the node's NVIDIA GPUs by NVML, as Ray's accelerator manager counts them (0 without a driver),
    narrowed by ``CUDA_VISIBLE_DEVICES`` as torch narrows them (``visible_gpus``): the driver imports no torch.
    """
    from ray._private.accelerators import NvidiaGPUAcceleratorManager

    node_gpus = NvidiaGPUAcceleratorManager.get_current_node_num_accelerators()
    gpus = visible_gpus(os.environ.get(VISIBLE_GPUS_ENV), node_gpus)
    return {"CPU": float(len(os.sched_getaffinity(0))), "GPU": float(gpus)}


def cluster_resources() -> dict[str, float]:
    return {k: float(v) for k, v in ray.cluster_resources().items()}


def sees_gpus() -> bool:
    return cluster_resources().get("GPU", 0) > 0


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()
