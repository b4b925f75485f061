"""The device wheelhouse: the closure that the device lacks, and Ray's wheel stripped with a consistent RECORD."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from bench.wheelhouse import _drop_from_ray, needed, strip_wheel


def _wheel(folder: Path, name: str, requires: list[str], files: dict[str, bytes] | None = None) -> Path:
    path = folder / f"{name}-1.0-py3-none-any.whl"
    files = {f"{name}/__init__.py": b"", **(files or {})}
    meta = "Metadata-Version: 2.1\nName: {}\nVersion: 1.0\n{}".format(
        name, "".join(f"Requires-Dist: {r}\n" for r in requires)
    )
    info = f"{name}-1.0.dist-info"
    record = [f"{f},sha256=x,{len(b)}" for f, b in files.items()] + [f"{info}/METADATA,sha256=x,1", f"{info}/RECORD,,"]
    with zipfile.ZipFile(path, "w") as z:
        for f, b in files.items():
            z.writestr(f, b)
        z.writestr(f"{info}/METADATA", meta)
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def test_needed_follows_extras_and_markers_but_not_what_the_device_has(tmp_path):
    wheels = {
        "ray": _wheel(tmp_path, "ray", ["click", "aiohttp-cors; extra == 'default'", "tensorboardx; extra == 'tune'"]),
        "aiohttp-cors": _wheel(tmp_path, "aiohttp_cors", ["aiohttp>=3"]),
        "tensorboardx": _wheel(tmp_path, "tensorboardx", ["numpy", "old; python_version < '3.8'"]),
        "optuna": _wheel(tmp_path, "optuna", ["alembic", "virtualenv"]),
        "alembic": _wheel(tmp_path, "alembic", ["mako"]),
        "mako": _wheel(tmp_path, "mako", []),
    }
    have = frozenset({"click", "aiohttp", "numpy"})
    keep = needed(wheels, ["ray[default,tune]==1.0", "optuna"], have=have)
    assert keep == {"ray", "aiohttp-cors", "tensorboardx", "optuna", "alembic", "mako"}  # virtualenv: NOT_USED
    assert needed(wheels, ["ray==1.0"], have=have) == {"ray"}  # no extras asked, none followed
    with pytest.raises(FileNotFoundError, match="mako"):
        needed({k: v for k, v in wheels.items() if k != "mako"}, ["optuna"], have=have)


def test_strip_drops_jars_and_source_maps_and_their_record_lines(tmp_path):
    files = {"ray/jars/ray_dist.jar": b"j" * 100, "ray/dashboard/client/main.js.map": b"m", "ray/core.py": b"x=1\n"}
    src = _wheel(tmp_path, "ray", [], files)
    dst = tmp_path / "out.whl"
    assert strip_wheel(src, dst, _drop_from_ray) == (2, 101)
    with zipfile.ZipFile(dst) as z:
        names = set(z.namelist())
        record = z.read("ray-1.0.dist-info/RECORD").decode().splitlines()
    assert "ray/core.py" in names and not any(n.startswith("ray/jars/") or n.endswith(".map") for n in names)
    assert {line.split(",")[0] for line in record} == names  # every file listed once, nothing missing
