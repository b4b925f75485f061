"""A real small file system (tmpfs) for the storage tests: it fills up, turns read-only and grows, like a disk."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


class Tmpfs:
    """A real small file system (tmpfs) mounted at ``path``: fills up, turns read-only, grows, like a disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def remount(self, *options: str) -> None:
        subprocess.run(["mount", "-o", ",".join(["remount", *options]), str(self.path)], check=True)

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Tmpfs]:
    """Mount a tmpfs of ``size`` (e.g. "24m") at ``path`` for the block; skips the test where mounting is not
    permitted (it needs root or CAP_SYS_ADMIN). Always unmounted, lazily if a process still holds a file."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command: these tests need a real small file system (tmpfs)")
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs at {path} ({proc.stderr.strip() or proc.returncode}): these tests need root or "
            "CAP_SYS_ADMIN to build a real small file system"
        )
    try:
        yield Tmpfs(path)
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
