"""The study lock in S3 (a real S3 server on 127.0.0.1): conditional writes make one driver the holder, a
lapsed lock is taken over, a lock that changed hands is noticed, and a released lock is gone."""

from __future__ import annotations

import threading
import time

import pytest

from study.lock import ENV_HEARTBEAT, ENV_LAPSE, LockHeld
from study.object_lock import ObjectLock, current_object_holder
from study.storage import storage_failure
from tests.helpers.s3 import BUCKET


@pytest.fixture
def storage(s3, request):
    return s3.uri(f"locks/{request.node.name}")


def test_one_holder_and_the_lock_is_gone_after_release(s3, storage):
    first = ObjectLock(storage, "s")
    first.acquire()
    try:
        with pytest.raises(LockHeld, match="is in use by another driver"):
            ObjectLock(storage, "s").acquire()
        held = current_object_holder(storage, "s")
        assert held is not None and held.holder is not None and held.holder.token == first.me.token
    finally:
        first.release()
    assert not [k for k in s3.objects("locks/") if k.endswith("/.s.lock") and "one_holder" in k]
    assert current_object_holder(storage, "s") is None


def test_a_lapsed_lock_is_taken_over_and_its_holder_learns_it(monkeypatch, storage):
    monkeypatch.setenv(ENV_HEARTBEAT, "0.5")
    monkeypatch.setenv(ENV_LAPSE, "1")
    stalled = ObjectLock(storage, "s")
    stalled.acquire()
    stalled._stop.set()  # its heartbeat stops, as in a driver stalled or killed on another machine
    stalled._thread.join()
    stalled.me = type(stalled.me)(**{**stalled.me.__dict__, "host": "another-host"})  # not this host's process
    time.sleep(2.5)  # on the store's clock (whole seconds), the lock is older than its lapse
    taker = ObjectLock(storage, "s")
    taker.acquire()
    try:
        assert taker.takeover and "heartbeat lapsed" in taker.takeover
        lost = []
        stalled.on_lost = lambda: lost.append(True)
        stalled._stop = threading.Event()  # it wakes up: its next heartbeat finds the lock changed hands
        t = threading.Thread(target=stalled._beat)
        t.start()
        t.join(timeout=10)
        assert lost == [True] and stalled.lost.is_set()
    finally:
        taker.release()


def test_an_unreachable_store_is_a_storage_failure_naming_it():
    storage = f"s3://{BUCKET}/x?endpoint_override=127.0.0.1:9&scheme=http"  # nothing listens on port 9
    with pytest.raises(OSError) as caught:
        ObjectLock(storage, "s").acquire()
    failure = storage_failure(caught.value, storage)
    assert failure is not None and failure.reason == "the object store cannot be reached"
    assert failure.line().startswith(f"s3://{BUCKET}/x")
