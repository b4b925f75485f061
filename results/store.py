"""Where a study lives: a directory (local, or a shared mount) or an object store URI, through ``pyarrow.fs``,
the file system layer Ray Tune uses itself.

A location is the text a user gives ``--storage`` (or a study directory to a reader): a path, or a URI such as
``s3://bucket/prefix`` (S3 and S3-compatible stores: endpoint, region and credentials the standard AWS way, or in
the URI as pyarrow spells it, e.g. ``s3://bucket/prefix?endpoint_override=host:9000&scheme=http``), ``gs://...``
and the other schemes pyarrow knows. Credentials written into a URI are never shown (``shown``) or saved.

Readers (``results.show``, ``results.report``, ``study.predict --best``) work on a local view of a study in
object storage (``local_view``: its tables, plan and journals, fetched once); the table loaders of
``results.query`` read a URI directly.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
CHECKPOINT_PREFIX = "checkpoint_"  # Ray's checkpoint folders: a local view leaves them in the store


class LocationError(ValueError):
    """A storage location that cannot be used (unknown scheme, bad URI, missing package)."""


def is_uri(location: str | os.PathLike[str]) -> bool:
    """True for an object store URI (``s3://``, ``gs://``...); False for a path (``file://`` counts as a path)."""
    match = _SCHEME.match(str(location))
    return match is not None and match.group(1).lower() != "file"


def local_path(location: str | os.PathLike[str]) -> Path:
    """The path of a location that is not a URI (``file://`` stripped, ``~`` expanded)."""
    text = str(location)
    if text.lower().startswith("file://"):
        text = urlsplit(text).path
    return Path(text).expanduser()


def scheme(location: str) -> str:
    match = _SCHEME.match(location)
    return match.group(1).lower() if match else ""


def shown(location: str | os.PathLike[str]) -> str:
    """The location as it may be printed and saved: a URI without the credentials written into it."""
    text = str(location)
    if not is_uri(text):
        return text
    parts = urlsplit(text)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def child(location: str | os.PathLike[str], *names: str) -> str:
    """``location/names...``; a URI keeps its query (``?endpoint_override=...``) at the end."""
    text = str(location)
    if not is_uri(text):
        return str(Path(text, *names))
    parts = urlsplit(text)
    path = "/".join([parts.path.rstrip("/"), *names])
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def parent_and_name(location: str) -> tuple[str, str]:
    """A study location split into its storage and its name."""
    if not is_uri(location):
        path = local_path(location)
        return str(path.parent), path.name
    parts = urlsplit(location)
    head, _, name = str(parts.path).rstrip("/").rpartition("/")
    return urlunsplit((parts.scheme, parts.netloc, head, parts.query, parts.fragment)), name


def resolve(location: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    """The file system and the path on it (``bucket/prefix`` for a store); LocationError with the reason."""
    text = str(location)
    if not is_uri(text):
        return pafs.LocalFileSystem(), str(local_path(text).absolute())
    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (ValueError, OSError, ImportError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LocationError(f"{shown(text)}: {reason}") from None
    return fs, path.rstrip("/")


def exists(location: str) -> bool:
    fs, path = resolve(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(location: str) -> bytes:
    fs, path = resolve(location)
    with fs.open_input_stream(path) as f:
        return bytes(f.read())


def write_bytes(location: str, data: bytes) -> None:
    """One whole object (a store's PUT is atomic: readers see the old object or the new one)."""
    fs, path = resolve(location)
    with fs.open_output_stream(path) as f:
        f.write(data)


def files(location: str, skip: Callable[[str], bool] = lambda rel: False) -> dict[str, pafs.FileInfo]:
    """Every file under ``location`` by its path relative to it ('/'-separated), less those ``skip`` names."""
    fs, root = resolve(location)
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except FileNotFoundError:
        return {}
    found = {}
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(root) :].lstrip("/")
        if not skip(rel):
            found[rel] = info
    return found


def in_checkpoint(rel: str) -> bool:
    """A file inside one of Ray's checkpoint folders (kept in the store by a local view)."""
    return any(part.startswith(CHECKPOINT_PREFIX) for part in rel.split("/")[:-1])


def download(location: str, into: Path, skip: Callable[[str], bool] = in_checkpoint) -> int:
    """Copy the files under ``location`` into the directory ``into``; returns how many."""
    fs, root = resolve(location)
    found = files(location, skip)
    for rel in found:
        target = Path(into, *rel.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(f"{root}/{rel}") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return len(found)


@contextlib.contextmanager
def local_view(location: str | os.PathLike[str]) -> Iterator[Path]:
    """A local directory with the study's files: the directory itself, or for a URI a temporary copy of
    everything but the checkpoints (tables, plan, journals, Ray's state and logs), removed afterwards."""
    if not is_uri(location):
        yield local_path(location)
        return
    with tempfile.TemporaryDirectory(prefix="welllog-study-view-") as tmp:
        _, name = parent_and_name(str(location))
        view = Path(tmp) / (name or "study")
        view.mkdir()
        download(str(location), view)
        yield view


def checkpoint_location(study: str, recorded: str) -> str:
    """Where a checkpoint recorded in the tables is, for a reader of the study at ``study``.

    Ray names a checkpoint in object storage by its path on the store (``bucket/prefix/NAME/task/trial/...``);
    it is found again under the study's own URI, with the study's endpoint and options.
    """
    if is_uri(recorded) or not is_uri(study):
        return recorded
    _, name = parent_and_name(study)
    marker = f"/{name}/"
    if marker not in f"/{recorded}":
        return recorded
    rel = f"/{recorded}".split(marker, 1)[1]
    return child(study, *rel.split("/"))


@contextlib.contextmanager
def fetched(location: str) -> Iterator[Path]:
    """A local path for a file or folder (a checkpoint): itself, or a temporary copy of an object store's."""
    if not is_uri(location):
        yield local_path(location)
        return
    fs, path = resolve(location)
    with tempfile.TemporaryDirectory(prefix="welllog-study-fetch-") as tmp:
        target = Path(tmp) / (path.rsplit("/", 1)[-1] or "object")
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            with fs.open_input_stream(path) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        elif info.type == pafs.FileType.Directory or files(location):
            target.mkdir()
            download(location, target, skip=lambda rel: False)
        else:
            raise FileNotFoundError(f"{shown(location)}: no such file or folder")
        yield target
