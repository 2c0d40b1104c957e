"""Locks: shared coexist, exclusive excludes, stale ones go, live ones stay."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from dedupe import locking
from dedupe.locking import RepositoryLocked
from dedupe.storage.memory import MemoryStorage
from repo_format import layout, lock


def plant(storage: MemoryStorage, name: str, **kw: object) -> None:
    rec = dict(exclusive=True, host=socket.gethostname(), pid=1, pid_start=0, boot_id=locking._boot_id(),
               time_ns=time.time_ns(), purpose="test")
    rec.update(kw)
    storage.put(layout.lock_path(name), lock.encode(lock.LockRecord(**rec)))  # type: ignore[arg-type]


def test_shared_locks_coexist_and_exclusive_waits() -> None:
    s = MemoryStorage()
    a = locking.acquire(s, exclusive=False, purpose="backup")
    b = locking.acquire(s, exclusive=False, purpose="backup")
    with pytest.raises(RepositoryLocked, match="backup by pid"):
        locking.acquire(s, exclusive=True, purpose="gc", wait_s=0)
    a.release()
    b.release()
    with locking.acquire(s, exclusive=True, purpose="gc"):
        with pytest.raises(RepositoryLocked):
            locking.acquire(s, exclusive=False, purpose="backup", wait_s=0.3)
    assert list(s.list(layout.LOCK_DIR)) == []


def test_lock_of_a_dead_process_is_removed() -> None:
    s = MemoryStorage()
    p = subprocess.Popen(["true"])
    p.wait()
    plant(s, "dead", pid=p.pid, pid_start=12345)
    with locking.acquire(s, exclusive=True, purpose="gc"):
        pass
    assert not s.exists(layout.lock_path("dead"))


def test_lock_of_a_live_process_is_never_broken() -> None:
    s = MemoryStorage()
    p = subprocess.Popen(["sleep", "30"])
    try:
        plant(s, "live", pid=p.pid, pid_start=locking._pid_start(p.pid), time_ns=1)  # very old, still alive
        with pytest.raises(RepositoryLocked):
            locking.acquire(s, exclusive=False, purpose="backup", wait_s=0.2)
        assert s.exists(layout.lock_path("live"))
    finally:
        p.kill()
        p.wait()


def test_reused_pid_is_not_mistaken_for_the_holder() -> None:
    s = MemoryStorage()
    p = subprocess.Popen(["sleep", "30"])
    try:
        plant(s, "reused", pid=p.pid, pid_start=locking._pid_start(p.pid) + 1)
        with locking.acquire(s, exclusive=True, purpose="gc"):
            pass
        assert not s.exists(layout.lock_path("reused"))
    finally:
        p.kill()
        p.wait()


def test_other_hosts_locks_go_stale_by_age_only() -> None:
    s = MemoryStorage()
    plant(s, "fresh", host="elsewhere", pid=999999)
    with pytest.raises(RepositoryLocked):
        locking.acquire(s, exclusive=True, purpose="gc", wait_s=0)
    plant(s, "fresh", host="elsewhere", pid=999999, time_ns=time.time_ns() - 3600 * 10**9)
    with locking.acquire(s, exclusive=True, purpose="gc"):
        pass
