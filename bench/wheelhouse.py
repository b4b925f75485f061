"""The wheels the H200 device machine lacks for a study, built here (with network) into ``.whl/``.

That machine has PyTorch, Lightning, torchmetrics, pandas, pyarrow and more (``/work/.library/device/KINDS.md``,
"Python packages already there") but not Ray or Optuna, and it cannot reach a package index. This downloads the
dependency closure of ``ray[default,tune]==2.60.*`` and ``optuna>=5,<6`` for CPython 3.12 on manylinux x86-64,
keeps what is reachable from those two without passing through a package the machine already has, strips
``ray/jars`` (Java workers only) and JavaScript source maps from Ray's wheel (its RECORD rewritten so pip
installs it), drops three optional packages a study never imports there (below), and checks the total against
the limit of what a device call may carry alongside the tree.

    python -m bench.wheelhouse              # or: bash bench/device_wheelhouse.sh
    # on the device: python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOTS = ("ray[default,tune]==2.60.*", "optuna>=5,<6")
LIMIT_MIB = 60.0
PYTHON = "3.12"
PLATFORMS = (
    *(f"manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34, 35)),
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
TARGET_ENV = {
    "python_version": PYTHON,
    "python_full_version": f"{PYTHON}.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
DEVICE_PACKAGES = Path(__file__).with_name("device_packages.txt")  # KINDS.md's list for the nvidia-h200 kind
# In ray[default]'s closure but never imported by a study on that machine (dropped with their own needs):
NOT_USED = {
    "virtualenv": "runtime_env pip/uv environments only (ray/_private/runtime_env/pip.py, imported lazily)",
    "py-spy": "the dashboard's stack and flame-graph buttons (a subprocess, not an import)",
    "cryptography": "the autoscaler's cluster launcher and google-auth's service-account signing (lazy imports)",
}


def _drop_from_ray(name: str) -> bool:
    return name.startswith("ray/jars/") or name.endswith((".js.map", ".css.map", ".map"))


def download(dest: Path) -> None:
    """The full closure of ROOTS for the target, as wheels only."""
    platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
    target = ["--python-version", PYTHON, "--implementation", "cp", "--abi", f"cp{PYTHON.replace('.', '')}"]
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
    subprocess.run([*pip, *target, *platform_args, "--dest", str(dest), *ROOTS], check=True)


def device_has() -> frozenset[str]:
    lines = DEVICE_PACKAGES.read_text().splitlines()
    return frozenset(canonicalize_name(n) for n in lines if n.strip() and not n.startswith("#"))


def wheel_name(path: Path) -> str:
    return canonicalize_name(path.name.split("-")[0])


def requirements(path: Path) -> list[Requirement]:
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        lines = z.read(meta).decode().splitlines()
    return [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]


def _applies(req: Requirement, extras: Iterable[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**TARGET_ENV, "extra": e}) for e in ("", *extras))


def needed(wheels: dict[str, Path], roots: Iterable[str] = ROOTS, have: frozenset[str] | None = None) -> set[str]:
    """Names reachable from ``roots`` without entering what the device has or NOT_USED (neither is traversed)."""
    have = device_has() if have is None else have
    todo = [Requirement(r) for r in roots]
    extras: dict[str, set[str]] = {}
    keep: set[str] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in have or name in NOT_USED:
            continue
        new_extras = set(req.extras) - extras.get(name, set())
        if name in keep and not new_extras:
            continue
        keep.add(name)
        extras.setdefault(name, set()).update(req.extras)
        if name not in wheels:
            raise FileNotFoundError(f"{name} is needed but pip downloaded no wheel for it")
        todo += [r for r in requirements(wheels[name]) if _applies(r, extras[name])]
    return keep


def strip_wheel(src: Path, dst: Path, drop: Callable[[str], bool]) -> tuple[int, int]:
    """Copy a wheel without the entries ``drop`` selects, their RECORD lines removed; (files, bytes) dropped."""
    files = dropped = 0
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
        record = next(n for n in zin.namelist() if re.fullmatch(r"[^/]+\.dist-info/RECORD", n))
        for info in zin.infolist():
            if info.filename == record:
                continue
            if drop(info.filename):
                files, dropped = files + 1, dropped + info.file_size
                continue
            zout.writestr(info, zin.read(info), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        kept = [line for line in zin.read(record).decode().splitlines() if line and not drop(line.split(",")[0])]
        zout.writestr(record, "\n".join(kept) + "\n")
    return files, dropped


def build(out: Path, download_dir: Path | None = None) -> float:
    """Fill ``out`` with the wheels the device needs; returns their total MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        src = download_dir or Path(tmp)
        if download_dir is None:
            download(src)
        wheels = {wheel_name(p): p for p in sorted(src.glob("*.whl"))}
        keep = needed(wheels)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for name in sorted(keep):
            path = wheels[name]
            if name == "ray":
                files, size = strip_wheel(path, out / path.name, _drop_from_ray)
                print(f"  ray: stripped {files} files ({size / 2**20:.1f} MiB unpacked): ray/jars and source maps")
            else:
                shutil.copy2(path, out / path.name)
        skipped = sorted(set(wheels) - keep)
    total = sum(p.stat().st_size for p in out.glob("*.whl")) / 2**20
    for p in sorted(out.glob("*.whl"), key=lambda p: -p.stat().st_size):
        print(f"  {p.stat().st_size / 2**20:6.2f} MiB  {p.name}")
    print(f"  not carried (the device has them, or their only users do): {', '.join(skipped)}")
    for name, why in NOT_USED.items():
        print(f"  dropped {name}: {why}")
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(".whl"), help="wheelhouse folder (default: .whl, git-ignored)")
    p.add_argument("--from", dest="source", type=Path, help="use wheels already downloaded here instead of pip")
    args = p.parse_args(argv)
    total = build(args.out, args.source)
    n = len(list(args.out.glob("*.whl")))
    verdict = "under" if total <= LIMIT_MIB else "OVER"
    print(f"wheelhouse {args.out}: {n} wheels, {total:.1f} MiB, {verdict} the {LIMIT_MIB:.0f} MiB limit")
    return 0 if total <= LIMIT_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
