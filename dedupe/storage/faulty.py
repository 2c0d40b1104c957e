"""A storage that fails on purpose, for crash-consistency tests.

Wraps another storage and raises ``InjectedFault`` on the N-th mutating call
(put, create, delete), as a crash or a full disk would at that moment.
"""

from __future__ import annotations

from typing import Iterator

from dedupe.storage.base import Data, NoDirectory, Storage, StorageError


class InjectedFault(StorageError):
    exit_code = 24


class FaultyStorage(NoDirectory):
    def __init__(self, inner: Storage, fail_at: int | None = None) -> None:
        self.inner = inner
        self.location = inner.location
        self.read_span = inner.read_span
        self.read_threads = inner.read_threads
        self.fail_at = fail_at  # 1-based number of the mutating call that fails
        self.writes = 0

    def _tick(self, op: str, name: str) -> None:
        self.writes += 1
        if self.fail_at is not None and self.writes == self.fail_at:
            raise InjectedFault(f"injected fault: {op} {name} (write #{self.writes})")

    def put(self, name: str, data: Data) -> None:
        self._tick("put", name)
        self.inner.put(name, data)

    def create(self, name: str, data: bytes) -> None:
        self._tick("create", name)
        self.inner.create(name, data)

    def delete(self, name: str) -> None:
        self._tick("delete", name)
        self.inner.delete(name)

    def get(self, name: str) -> bytes:
        return self.inner.get(name)

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(name, offset, length)

    def size(self, name: str) -> int:
        return self.inner.size(name)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        return self.inner.list(prefix)

    def abort_stale_uploads(self, older_than_s: float) -> int:
        return self.inner.abort_stale_uploads(older_than_s)

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)
