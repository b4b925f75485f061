"""Every list of names has one home: a second copy of one, written by hand, fails here.

The product's code (study, models, datamodules, results, bench) is parsed; any tuple, list, set or dict-key
literal outside a list's home that holds two or more of its names is a copy, and so is comparing a value with a
task name (``task == "multiclass"``): modes and task specs answer such questions in one place. Tables of
per-task data keyed by task (presets, each task's losses) are data about the tasks, not copies of their list.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from datamodules.labels import TASKS
from models.hparams import LR_SCHEDULES, param_types
from models.loss_catalogue import LOSSES, WEIGHT_SCHEMES
from models.metric_names import METRICS
from results.schema import RESTART_REASONS, STATUSES

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("study", "models", "datamodules", "results", "bench")
# name list -> (its names, the modules allowed to spell them out)
REGISTRIES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "tasks": (frozenset(TASKS), frozenset({"datamodules/labels.py"})),
    "losses": (frozenset(n for specs in LOSSES.values() for n in specs), frozenset({"models/loss_catalogue.py"})),
    "hyperparameters": (frozenset(param_types()), frozenset({"models/hparams.py", "models/loss_catalogue.py"})),
    "lr schedules": (frozenset(LR_SCHEDULES), frozenset({"models/hparams.py"})),
    "class weightings": (frozenset(WEIGHT_SCHEMES), frozenset({"models/loss_catalogue.py"})),
    "metrics": (frozenset(METRICS), frozenset({"models/metric_names.py"})),
    "trial statuses": (frozenset(STATUSES), frozenset({"results/schema.py"})),
    "restart reasons": (frozenset(RESTART_REASONS), frozenset({"results/schema.py"})),
}


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def _literal_groups(tree: ast.AST):
    """(line, strings, are dict keys) of every tuple/list/set literal and every dict literal's keys."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            elts, keys = node.elts, False
        elif isinstance(node, ast.Dict):
            elts, keys = [k for k in node.keys if k is not None], True
        else:
            continue
        strings = {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        if len(strings) >= 2:
            yield node.lineno, strings, keys


def _copies(path: Path, tree: ast.AST) -> list[str]:
    rel = path.relative_to(REPO).as_posix()
    found = []
    for line, strings, keys in _literal_groups(tree):
        for kind, (names, homes) in REGISTRIES.items():
            if keys and kind == "tasks":
                continue
            if rel not in homes and len(strings & names) >= 2:
                found.append(f"{rel}:{line}: {kind} {sorted(strings & names)}")
    if rel not in REGISTRIES["tasks"][1]:
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                named = [o.value for o in operands if isinstance(o, ast.Constant) and o.value in TASKS]
                if named:
                    found.append(f"{rel}:{node.lineno}: compares with task name {named[0]!r}")
    return found


def test_no_name_list_is_written_twice():
    copies = [c for path in _sources() for c in _copies(path, ast.parse(path.read_text(), str(path)))]
    assert not copies, "names copied by hand; import them from their home instead:\n" + "\n".join(copies)


@pytest.mark.parametrize(
    "snippet",
    [
        'LOSSES = ("bce", "dice")',
        'SCHEDULES = ["constant", "cosine"]',
        'if task == "multiclass": pass',
        'PARAMS = {"lr": 1e-3, "depth": 4}',
        'FINAL = ("completed", "error")',
    ],
)
def test_the_check_catches_a_copy(snippet):
    path = REPO / "study" / "example.py"  # never written: the tree is parsed from the snippet
    assert _copies(path, ast.parse(snippet))
