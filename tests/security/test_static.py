"""Static security checks over the product sources (ast, not grep) and the dependency floors."""

from __future__ import annotations

import ast
from importlib.metadata import version
from pathlib import Path

import torch
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("study", "models", "datamodules", "results", "bench")
LOOPBACK = "127.0.0.1"


def _trees(*packages: str) -> list[tuple[Path, ast.Module]]:
    files = sorted(p for package in packages for p in (REPO / package).rglob("*.py"))
    assert files, f"no sources under {packages}"
    return [(p, ast.parse(p.read_text(), filename=str(p))) for p in files]


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return "?"


def _true(call: ast.Call, keyword: str) -> bool:
    return any(k.arg == keyword and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def unsafe_loads(tree: ast.Module) -> list[str]:
    """Calls that unpickle without ``weights_only=True``: torch.load, load_from_checkpoint, fit(ckpt_path=)."""
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "load" for a in node.names):
            bad.append(f"line {node.lineno}: from torch import load")
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        loads = name in ("torch.load", "load_from_checkpoint") or name.endswith(".load_from_checkpoint")
        resumes = any(k.arg == "ckpt_path" for k in node.keywords)
        if (loads or resumes) and not _true(node, "weights_only"):
            bad.append(f"line {node.lineno}: {name}(...) without weights_only=True")
    return bad


def test_unsafe_load_checker_catches_what_it_should():
    src = """
import torch
torch.load(p)
torch.load(p, weights_only=False)
Segmenter.load_from_checkpoint(p)
trainer.fit(m, ckpt_path=p)
torch.load(p, weights_only=True)
trainer.fit(m, ckpt_path=p, weights_only=True)
"""
    assert [b.split(":")[0] for b in unsafe_loads(ast.parse(src))] == ["line 3", "line 4", "line 5", "line 6"]


def test_every_checkpoint_load_in_the_product_is_weights_only():
    bad = [f"{p.relative_to(REPO)} {b}" for p, tree in _trees(*PRODUCT) for b in unsafe_loads(tree)]
    assert not bad, "\n".join(bad)
    resumes = [
        p
        for p, tree in _trees("study")
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and any(k.arg == "ckpt_path" for k in n.keywords)
    ]
    assert resumes, "the trial's resume call was not found: the check above proves nothing"


def test_ray_token_auth_is_never_disabled():
    hits = [
        f"{p.relative_to(REPO)}:{n.lineno}"
        for p, tree in _trees("study")
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and "RAY_AUTH_MODE" in n.value
    ]
    assert not hits, f"study/ touches RAY_AUTH_MODE: {hits}"


def _dashboard_defaults(tree: ast.Module) -> list[tuple[int, object]]:
    """(line, value) of every default given to a dashboard host: fields, arguments, argparse flags, ray.init."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and _name(node.target) == "dashboard_host" and node.value is not None:
            found.append((node.lineno, getattr(node.value, "value", ast.unparse(node.value))))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            found += [(node.lineno, getattr(d, "value", ast.unparse(d))) for a, d in pairs if a.arg == "dashboard_host"]
        elif isinstance(node, ast.Call):
            flag = node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "--dashboard-host"
            for k in node.keywords:
                if (flag and k.arg == "default") or (k.arg == "dashboard_host" and isinstance(k.value, ast.Constant)):
                    found.append((node.lineno, getattr(k.value, "value", ast.unparse(k.value))))
        if isinstance(node, ast.Constant) and node.value in ("0.0.0.0", "::"):
            found.append((node.lineno, node.value))
    return found


def test_dashboard_host_defaults_to_loopback():
    trees = _trees("study", "results")
    found = [(p.relative_to(REPO), line, v) for p, tree in trees for line, v in _dashboard_defaults(tree)]
    assert len(found) >= 2, f"expected the config field and the --dashboard-host flag, found {found}"
    assert all(v == LOOPBACK for _, _, v in found), found


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {r.name: r for r in map(Requirement, project["dependencies"])}


def test_dependency_floors():
    reqs = _requirements()
    assert Version(torch.__version__.split("+")[0]) >= Version("2.10"), torch.__version__
    torch_floors = [Version(s.version) for s in reqs["torch"].specifier if s.operator in (">=", "==", "~=")]
    assert torch_floors and min(torch_floors) >= Version("2.10"), str(reqs["torch"].specifier)
    assert "2.9.99" not in reqs["torch"].specifier
    assert str(reqs["ray"].specifier) == "==2.60.*", str(reqs["ray"].specifier)
    assert {"default", "tune"} <= reqs["ray"].extras
    assert version("ray") in reqs["ray"].specifier, version("ray")
