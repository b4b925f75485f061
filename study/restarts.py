"""Why Ray restarted a trial, from Ray's own signals: the exception it recorded and its table of nodes.

A trial's node is named ``host/<first 12 hex digits of the Ray node id>`` (several Ray nodes can share a host).
Ray Tune hands a failed trial's exception to the driver (``error.pkl``): an actor whose node died raises
``ActorDiedError`` (``RayActorError``), exactly as a worker process that was killed does, so the two are told
apart by Ray's node table (``ray.nodes()``): was the node the trial ran on alive when the failure came? A node
that left the cluster is ``NODE_LOST`` and does not count against the trial's retries (``study.callbacks``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

import ray
from ray.exceptions import LocalRayletDiedError, NodeDiedError, RayActorError, RayTaskError, WorkerCrashedError

from results.schema import NODE_LOST, RETRIED, WORKER_DIED

NODE_ID_DIGITS = 12  # of the Ray node id, in a node's name


def node_name(host: str, node_id: str) -> str:
    """How the tables name a node: its host and the start of its Ray node id."""
    return f"{host}/{node_id[:NODE_ID_DIGITS]}"


def this_node() -> str:
    """The name of the node this process runs on (inside a Ray worker)."""
    return node_name(socket.gethostname(), ray.get_runtime_context().get_node_id())


def dead_nodes() -> frozenset[str]:
    """Ids of the nodes Ray's node table says have left the cluster (none when Ray is not running here)."""
    if not ray.is_initialized():
        return frozenset()
    return frozenset(str(n["NodeID"]) for n in ray.nodes() if not n.get("Alive", True))


def _is_dead(name: str, dead: Iterable[str]) -> bool:
    prefix = name.rpartition("/")[2]
    return bool(prefix) and any(node_id.startswith(prefix) for node_id in dead)


def _unwrapped(exc: BaseException | None) -> BaseException | None:
    """An actor error that reached the trial through a task it ran, as that actor error."""
    if isinstance(exc, RayTaskError) and isinstance(exc.cause, RayActorError):
        return exc.cause
    return exc


def preempted(exc: BaseException | None) -> bool:
    """Whether Ray says the failure's node was drained for preemption: Ray itself does not count such a failure
    against the trial's retries."""
    exc = _unwrapped(exc)
    return isinstance(exc, RayActorError) and exc.preempted


def reason(exc: BaseException | None, node: str | None, dead: frozenset[str], dead_at_start: frozenset[str]) -> str:
    """Why the trial's run ended, as a restart reason of ``results.schema``.

    Args:
        exc: the exception Ray recorded for the failed run (None when it kept only its text).
        node: the node the failed run reported from; None when it failed before its first epoch.
        dead: the nodes dead now (``dead_nodes()``).
        dead_at_start: the nodes that were dead when the run started; with ``node`` unknown, a node that died
            since then is taken as the run's.
    """
    exc = _unwrapped(exc)
    if isinstance(exc, (NodeDiedError, LocalRayletDiedError)) or preempted(exc):
        return NODE_LOST
    if isinstance(exc, (RayActorError, WorkerCrashedError)):
        lost = _is_dead(node, dead) if node is not None else bool(dead - dead_at_start)
        return NODE_LOST if lost else WORKER_DIED
    return RETRIED
