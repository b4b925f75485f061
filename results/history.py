"""A trial's runs in words: the nodes it ran on and why it was restarted, for the closing lines of
``study.run``, ``python -m results.show`` and the report.

The trials table keeps the node of each run (``nodes``, in order, null where a run reported nothing) and the
reason of each restart (``restart_reasons``): restart ``i`` ended run ``i - 1`` and began run ``i``. Tables
written before schema 1.3 hold neither (null), and their trials are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import pandas as pd

from results.schema import RESTART_REASONS

HEADER = ("trial", "status", "nodes, one per run", "restarts", "what happened")


def _cells(value: Any) -> list[Any] | None:
    """A list cell as a list: pandas gives lists (``load_trials``) or arrays (plain ``read_parquet``); null is None."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    return [None if v is None or v is pd.NA else v for v in value]


class Restart(NamedTuple):
    task: str
    trial_id: str
    reason: str  # one of results.schema.RESTART_REASONS
    source: str | None  # the node of the run that ended (None: it reported no epoch)
    target: str | None  # the node of the run that followed (None: no epoch reported from it yet)

    @property
    def moved(self) -> bool:
        return self.source is not None and self.target is not None and self.source != self.target

    def text(self) -> str:
        """What happened, without the trial: "moved from node A to node B after the node was lost"."""
        after = f"after {RESTART_REASONS.get(self.reason, self.reason)}"
        if self.moved:
            return f"moved from node {self.source} to node {self.target} {after}"
        if self.source is not None and self.source == self.target:
            return f"restarted on node {self.source} {after}"
        source = f"node {self.source}" if self.source else "a run that reported no epoch"
        target = f"node {self.target}" if self.target else "a run that has reported no epoch"
        return f"restarted {after}, from {source} to {target}"

    def line(self) -> str:
        return f"{self.task} trial {self.trial_id} {self.text()}"


def restarts(trials: pd.DataFrame) -> list[Restart]:
    """Every restart of the trials, by task and trial id, then in order."""
    out = []
    for row in trials.sort_values(["task", "trial_id"], kind="stable").to_dict("records"):
        nodes, reasons = _cells(row["nodes"]) or [], _cells(row["restart_reasons"]) or []
        for i, reason in enumerate(reasons, start=1):
            source = nodes[i - 1] if i - 1 < len(nodes) else None
            target = nodes[i] if i < len(nodes) else None
            out.append(Restart(str(row["task"]), str(row["trial_id"]), str(reason), source, target))
    return out


def _moved_or_restarted(trials: pd.DataFrame) -> list[tuple[dict[Any, Any], list[Any], list[Restart]]]:
    """(row, nodes, restarts) of each trial that restarted or ran on more than one node, by task and trial id."""
    by_trial: dict[tuple[str, str], list[Restart]] = {}
    for restart in restarts(trials):
        by_trial.setdefault((restart.task, restart.trial_id), []).append(restart)
    out = []
    for row in trials.sort_values(["task", "trial_id"], kind="stable").to_dict("records"):
        nodes = _cells(row["nodes"]) or []
        done = by_trial.get((str(row["task"]), str(row["trial_id"])), [])
        if done or len({n for n in nodes if n}) > 1:
            out.append((row, nodes, done))
    return out


def _nodes(nodes: list[Any]) -> str:
    return ", ".join(n or "?" for n in nodes)


def rows(trials: pd.DataFrame) -> list[Sequence[object]]:
    """The report's table (``HEADER``): one row per trial that restarted or ran on more than one node."""
    return [
        [row["trial_id"], row["status"], _nodes(nodes), len(done), "; ".join(r.text() for r in done)]
        for row, nodes, done in _moved_or_restarted(trials)
    ]


def lines(trials: pd.DataFrame) -> list[str]:
    """``results.show``'s lines: each trial that restarted, its nodes and restarts; nothing when none did."""
    found = _moved_or_restarted(trials)
    if not found:
        return []
    legend = "the node of each run, in order; ? = a run that reported no epoch"
    out = [f"restarts: {len(found)} of {len(trials)} trials ran more than once ({legend}):"]
    for row, nodes, done in found:
        out.append(
            f"  {row['task']} trial {row['trial_id']} ({row['status']}): nodes {_nodes(nodes)}; restarts {len(done)}"
        )
        out += [f"    {r.text()}" for r in done]
    return out
