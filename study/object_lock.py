"""One driver per study in object storage: the lock ``<storage>/.<name>.lock`` as an S3 object, created and
changed only by conditional writes.

S3 (and the S3-compatible stores that implement conditional writes) create the object with ``If-None-Match: *``
(it fails when the lock exists), refresh it with ``If-Match: <its ETag>`` (it fails once another driver replaced
it), take a lapsed lock over with ``If-Match`` on the stale lock's ETag (of two drivers doing so at once, one
wins) and delete it with ``If-Match`` too. Ages are measured on the store's clock (the object's LastModified
against the ``Date`` of the store's reply). The holder's record and the heartbeat settings are those of
``study.lock``; the behaviour is the same as on a shared file system.

A store that does not implement conditional writes answers them with an error (NotImplemented) or, worse,
ignores them; the README says what the lock then guarantees. Other schemes (``gs://``...) have no lock: the
driver warns once and runs without one.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from results.store import scheme
from study.lock import Holder, LockHeld, timing

log = logging.getLogger(__name__)
PRECONDITION_FAILED = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def lock_uri(storage: str, name: str) -> str:
    parts = urlsplit(storage)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path.rstrip('/')}/.{name}.lock"


def s3_client(storage: str) -> tuple[Any, str, str]:
    """A boto3 S3 client for the store of ``storage`` (endpoint, region and credentials from the URI as pyarrow
    reads them, else the standard AWS way), its bucket and the key prefix."""
    import boto3  # only a study in S3 needs it
    from botocore.config import Config

    parts = urlsplit(storage)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    kwargs: dict[str, Any] = {}
    if "endpoint_override" in query:
        endpoint = query["endpoint_override"]
        if "://" not in endpoint:
            endpoint = f"{query.get('scheme', 'https')}://{endpoint}"
        kwargs["endpoint_url"] = endpoint
    if "region" in query:
        kwargs["region_name"] = query["region"]
    user, _, host = parts.netloc.rpartition("@")
    if user:
        key, _, secret = user.partition(":")
        kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = unquote(key), unquote(secret)
    config = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("s3", config=config, **kwargs), host, parts.path.strip("/")


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class ObjectLock:
    """The lock of study ``name`` in the S3 storage ``storage``; the interface of ``study.lock.StudyLock``."""

    def __init__(self, storage: str, name: str) -> None:
        self.storage: Path | str = storage
        self.name = name
        self.path = lock_uri(storage, name)
        self.heartbeat_s, self.lapse_s = timing()
        self.me = Holder.me(self.heartbeat_s, self.lapse_s)
        self.takeover: str | None = None
        self.lost = threading.Event()
        self.on_lost: Callable[[], None] | None = None
        self._held = False
        self._etag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client, self._bucket, prefix = s3_client(storage)
        self._key = f"{prefix}/.{name}.lock" if prefix else f".{name}.lock"

    @property
    def held(self) -> bool:
        return self._held

    def _body(self) -> bytes:
        return json.dumps(asdict(self.me)).encode()

    def _put(self, **condition: str) -> str:
        reply = self._client.put_object(Bucket=self._bucket, Key=self._key, Body=self._body(), **condition)
        return str(reply["ETag"])

    def read(self) -> tuple[Holder | None, float, str] | None:
        """(holder, age on the store's clock in seconds, ETag) of the lock object, or None if there is none."""
        try:
            reply = self._client.get_object(Bucket=self._bucket, Key=self._key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        data = reply["Body"].read()
        now = parsedate_to_datetime(reply["ResponseMetadata"]["HTTPHeaders"]["date"])
        age = (now - reply["LastModified"]).total_seconds()
        try:
            holder: Holder | None = Holder(**json.loads(data))
        except (ValueError, TypeError):
            holder = None
        return holder, max(0.0, age), str(reply["ETag"])

    def acquire(self, wait: bool = True) -> None:
        """Take the lock, or raise LockHeld naming the holder (OSError when the store cannot be written)."""
        del wait  # a lapse is waited for by the next driver that tries, as with a file lock that is not yet stale
        try:
            self._etag = self._put(IfNoneMatch="*")
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) not in PRECONDITION_FAILED:
                raise _os_error(exc, self.path) from None
            found = self.read()
            if found is None:
                return self.acquire()  # released meanwhile
            holder, age, etag = found
            stale = holder is None or holder.gone() or age > holder.lapse_s
            if holder is None or not stale:
                note = (
                    ""
                    if holder is None or age <= 2 * holder.heartbeat_s
                    else f"; taken over once {holder.lapse_s:g} s old"
                )
                raise LockHeld(self.name, self.path, holder, age, note) from None
            try:
                self._etag = self._put(IfMatch=etag)  # of two drivers taking it over, one wins
            except (ClientError, BotoCoreError) as exc2:
                if _code(exc2) in PRECONDITION_FAILED:
                    raise LockHeld(self.name, self.path, None, None, " (it is being taken over)") from None
                raise _os_error(exc2, self.path) from None
            why = "its process is gone from this host" if holder.gone() else f"its heartbeat lapsed {age:.0f} s ago"
            self.takeover = f"took over the study lock {self.path} of {holder.describe()}: {why}"
        self._held = True
        self._thread = threading.Thread(target=self._beat, name="study-lock-heartbeat", daemon=True)
        self._thread.start()
        return None

    def _beat(self) -> None:
        failing = False
        while not self._stop.wait(self.heartbeat_s):
            try:
                self._etag = self._put(IfMatch=self._etag or "*")
                failing = False
            except (ClientError, BotoCoreError) as exc:
                if _code(exc) in PRECONDITION_FAILED:
                    log.error("the study lock %s is no longer ours", self.path)
                    self.lost.set()
                    if self.on_lost is not None:
                        self.on_lost()
                    return
                if not failing:
                    log.warning("study lock heartbeat failed: %s", exc)
                failing = True

    def release(self) -> None:
        """Stop the heartbeat and delete the lock if it is still ours. Never raises."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._held:
            self._held = False
            try:
                self._client.delete_object(Bucket=self._bucket, Key=self._key, IfMatch=self._etag)
            except (ClientError, BotoCoreError) as exc:
                log.warning("could not remove the study lock %s: %s", self.path, exc)


def _os_error(exc: Exception, path: str) -> OSError:
    """A store's refusal as the OSError the driver treats as a storage failure (its text names the kind)."""
    code = _code(exc) or type(exc).__name__
    return OSError(f"object store error {code} writing {path}: {str(exc).splitlines()[0] if str(exc) else code}")


def current_object_holder(storage: str, name: str) -> LockHeld | None:
    """A LockHeld naming the driver that holds the study's lock in object storage now, or None (reads only)."""
    if scheme(storage) != "s3":
        return None
    lock = ObjectLock(storage, name)
    try:
        found = lock.read()
    except (ClientError, BotoCoreError):  # unreachable: said by the storage check
        return None
    if found is None:
        return None
    holder, age, _ = found
    if holder is not None and (holder.gone() or age > holder.lapse_s):
        return None
    return LockHeld(name, lock.path, holder, age)


class NoLock:
    """A store without conditional writes in reach of this code (``gs://``, ``abfs://``...): no lock. The driver
    says so; running two drivers on one such study at once is the user's to avoid (README)."""

    def __init__(self, storage: str, name: str) -> None:
        self.storage: Path | str = storage
        self.name = name
        self.takeover: str | None = (
            f"{scheme(storage)}:// has no study lock here: run one driver of study {name!r} at a time"
        )
        self.lost = threading.Event()
        self.on_lost: Callable[[], None] | None = None
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self, wait: bool = True) -> None:
        self._held = True

    def release(self) -> None:
        self._held = False


def lock_for(storage: str, name: str) -> ObjectLock | NoLock:
    """The study lock in object storage: a conditional-write lock on S3, none elsewhere."""
    return ObjectLock(storage, name) if scheme(storage) == "s3" else NoLock(storage, name)
