"""Ray's experiment state as a save leaves it in an experiment directory (contents simplified, formats Ray's),
and as a full disk cuts a file short: for the state and resume tests, no Ray run."""

from __future__ import annotations

import json
import pickle

S1, S2 = "2026-11-28_10-00-00", "2026-11-28_11-00-00"


def write_state(exp_dir, session: str, trials: int = 2) -> dict[str, bytes]:
    """What Ray leaves in an experiment directory after a save (contents simplified, formats Ray's)."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    files = {
        f"experiment_state-{session}.json": json.dumps(
            {"trial_data": [[f"trial-{i}", "{}"] for i in range(trials)], "runner_data": {}, "stats": {}}
        ).encode(),
        f"search_gen_state-{session}.json": pickle.dumps({"counter": trials}, protocol=5),  # a pickle, .json
        f"searcher-state-{session}.pkl": pickle.dumps({"_numbers": {"a": 0}}, protocol=5),
        "tuner.pkl": pickle.dumps({"_tune_config": "x" * 100}, protocol=5),
    }
    for name, data in files.items():
        (exp_dir / name).write_bytes(data)
    return files


def cut(path, keep: float = 0.5) -> None:
    """As a full disk leaves a file that Ray copied over in place: its first part."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
