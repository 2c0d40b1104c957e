"""Repository locks (FORMAT.md section 10).

Shared locks let many backups run at once; an exclusive lock (gc, prune) waits
for all others and keeps new ones out. A lock whose process is gone is stale and
removed: on this host by checking the pid and its start time (and the boot id);
for other hosts by age, since a live holder refreshes its lock every
``REFRESH_S`` seconds. A lock held by a live process on this host is never broken.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import TYPE_CHECKING, Iterator

from dedupe.errors import DedupeError
from dedupe.storage import ObjectNotFound, Storage
from repo_format import layout, lock
from repo_format.errors import FormatError

if TYPE_CHECKING:
    from dedupe.repository import Repository

REFRESH_S = 300
STALE_AFTER_S = 1800
LOCK_WAIT_S = 60.0  # how long backups, restores and checks wait for a lock


def _hostname() -> str:
    """This host's name, as ``socket.gethostname`` gives it (without importing socket)."""
    return os.uname().nodename


class RepositoryLocked(DedupeError):
    exit_code = 13


def _pid_start(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[19])  # field 22 of the whole line


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _alive_here(rec: lock.LockRecord) -> bool:
    if rec.boot_id and rec.boot_id != _boot_id():
        return False
    try:
        os.kill(rec.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return not rec.pid_start or _pid_start(rec.pid) == rec.pid_start


def is_stale(rec: lock.LockRecord, now_ns: int | None = None) -> bool:
    if rec.host == _hostname():
        return not _alive_here(rec)
    now_ns = now_ns if now_ns is not None else time.time_ns()
    return (now_ns - rec.time_ns) > STALE_AFTER_S * 1_000_000_000


class Lock:
    """A held lock; ``release`` (or leaving the ``with`` block) removes it."""

    def __init__(self, storage: Storage, name: str, record: lock.LockRecord) -> None:
        self.storage = storage
        self.name = name
        self.record = record
        self._stop = threading.Event()
        self._refresher = threading.Thread(target=self._refresh_loop, daemon=True)
        self._refresher.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            rec = lock.LockRecord(**{**self.record.__dict__, "time_ns": time.time_ns()})
            try:
                self.storage.put(layout.lock_path(self.name), lock.encode(rec))
            except DedupeError:
                pass  # a missed refresh only makes the lock look older to other hosts

    def release(self) -> None:
        self._stop.set()
        self.storage.delete(layout.lock_path(self.name))

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            self.release()
        except DedupeError:
            if exc_type is None:
                raise
            # An error is already on its way (say, the storage went away): it is the one to
            # report; the lock left behind is stale once this process is gone.


def _others(storage: Storage, own: str | None) -> Iterator[tuple[str, lock.LockRecord | None]]:
    for path, _size in storage.list(layout.LOCK_DIR):
        name = path.rsplit("/", 1)[-1]
        if name == own:
            continue
        try:
            rec = lock.decode(storage.get(path), f"{storage.location}/{path}")
        except ObjectNotFound:
            continue
        except FormatError:
            rec = None  # unreadable: a half-written lock cannot exist (writes are atomic); treat as foreign
        yield name, rec


def _conflicts(storage: Storage, own: str, exclusive: bool, also_own: str | None = None) -> list[str]:
    """Live locks that conflict with ours; stale ones are removed on the way."""
    found = []
    for name, rec in _others(storage, own):
        if name == also_own:
            continue
        if rec is not None and is_stale(rec):
            storage.delete(layout.lock_path(name))
            continue
        if exclusive or rec is None or rec.exclusive:
            who = f"{rec.purpose} by pid {rec.pid} on {rec.host}" if rec else "unreadable lock"
            found.append(f"{name[:8]} ({who})")
    return found


def acquire(storage: Storage, *, exclusive: bool, purpose: str, wait_s: float = 0.0,
            also_own: str | None = None) -> Lock:
    """Take a lock, waiting up to ``wait_s`` seconds for conflicting ones to go.
    ``also_own`` names a lock the caller already holds: it does not conflict (gc
    upgrades its shared maintenance lock to an exclusive one this way)."""
    deadline = time.monotonic() + wait_s
    delay = 0.1
    while True:
        name = os.urandom(16).hex()
        rec = lock.LockRecord(exclusive=exclusive, host=_hostname(), pid=os.getpid(),
                              pid_start=_pid_start(os.getpid()), boot_id=_boot_id(),
                              time_ns=time.time_ns(), purpose=purpose)
        # Write first, then look: two racing writers each see the other and back off (section 10.2).
        storage.create(layout.lock_path(name), lock.encode(rec))
        conflicts = _conflicts(storage, name, exclusive, also_own)
        if not conflicts:
            return Lock(storage, name, rec)
        storage.delete(layout.lock_path(name))
        if time.monotonic() >= deadline:
            raise RepositoryLocked(f"{storage.location} is locked: {', '.join(conflicts)}")
        time.sleep(delay + int.from_bytes(os.urandom(2), "big") % 100 / 1000)
        delay = min(delay * 2, 5.0)


MAINTENANCE = frozenset({"prune", "gc", "forget", "protect"})


def _live_locks(storage: Storage) -> Iterator[tuple[str, lock.LockRecord]]:
    for path, _ in storage.list(layout.LOCK_DIR):
        try:
            rec = lock.decode(storage.get(path), path)
        except (ObjectNotFound, FormatError):
            continue
        if not is_stale(rec):
            yield path.rsplit("/", 1)[-1], rec


@contextlib.contextmanager
def maintenance_lock(storage: Storage, purpose: str, wait_s: float = 60.0) -> Iterator[Lock]:
    """A shared lock that backups, restores and checks coexist with, but no other
    prune, gc or forget (section 15.1)."""
    deadline = time.monotonic() + wait_s
    while True:
        held = acquire(storage, exclusive=False, purpose=purpose, wait_s=max(0.0, deadline - time.monotonic()))
        others = [f"{r.purpose} by pid {r.pid} on {r.host}" for n, r in _live_locks(storage)
                  if n != held.name and r.purpose in MAINTENANCE]
        if not others:
            break
        held.release()
        if time.monotonic() >= deadline:
            raise RepositoryLocked(f"{storage.location} is locked: {others[0]} is running")
        import secrets  # here, not at the top: a backup, which loads this module, needs no secrets
        time.sleep(0.1 + secrets.randbelow(200) / 1000)
    try:
        yield held
    finally:
        held.release()


@contextlib.contextmanager
def locked(repo: Repository, purpose: str, exclusive: bool = False, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold a lock on ``repo`` for the block, its index reloaded once the lock is ours."""
    with acquire(repo.storage, exclusive=exclusive, purpose=purpose, wait_s=wait_s):
        repo.refresh_index()  # a gc may have replaced the index before the lock was ours (FORMAT.md 15)
        yield
