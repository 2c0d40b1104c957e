"""The in-memory twin of a storage, for fast tests."""

from __future__ import annotations

import threading
from typing import Iterator

from dedupe.storage.base import Data, LocalReads, ObjectExists, ObjectNotFound, joined


class MemoryStorage(LocalReads):
    def __init__(self, location: str = "memory://") -> None:
        self.location = location
        self.files: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, name: str, data: Data) -> None:
        data = joined(data)
        with self._lock:
            self.files[name] = data

    def create(self, name: str, data: bytes) -> None:
        with self._lock:
            if name in self.files:
                raise ObjectExists(f"{self.location}{name}: already exists")
            self.files[name] = bytes(data)

    def get(self, name: str) -> bytes:
        try:
            return self.files[name]
        except KeyError:
            raise ObjectNotFound(f"{self.location}{name}: missing") from None

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self.get(name)[offset:offset + length]

    def size(self, name: str) -> int:
        return len(self.get(name))

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        pre = prefix.rstrip("/") + "/"
        with self._lock:
            items = sorted((n, len(d)) for n, d in self.files.items() if n.startswith(pre))
        yield from items

    def delete(self, name: str) -> None:
        with self._lock:
            self.files.pop(name, None)

    def exists(self, name: str) -> bool:
        return name in self.files
