"""The whole-stream BLAKE3 of a tar or stream backup, on a thread of its own.

BLAKE3 releases the GIL, so the stream is hashed beside the chunker and the chunk
workers, in read order. What is queued for hashing is a view of the reader's buffer,
which stays busy (cannot be reused) until hashed: at most ``MAX_PENDING`` bytes wait
(``TaskQueue``).
"""

from __future__ import annotations

from dedupe.backup.tasks import TaskQueue
from repo_format.ids import stream_hash

MAX_PENDING = 16 << 20
HASH_INLINE = 64 << 10  # smaller pieces (a pipe's reads) are hashed at once when nothing waits


class StreamHasher:
    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._hasher = stream_hash()
        self._tasks = TaskQueue("stream-hash", max_pending)

    def update(self, data: bytes | memoryview) -> None:
        """Hash ``data`` after everything before it; the caller must not overwrite it
        before ``digest`` (or ``close``)."""
        if len(data) < HASH_INLINE and self._tasks.idle():
            self._hasher.update(data)
        else:
            self._tasks.submit(len(data), self._hasher.update, data)

    @property
    def pending_bytes(self) -> int:
        return self._tasks.queued_bytes

    def digest(self) -> bytes:
        self._tasks.wait()
        return self._hasher.digest()

    def close(self) -> None:
        self._tasks.close()
