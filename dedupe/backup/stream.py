"""Any byte stream (a database dump, an image file, stdin) as one backup."""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

from dedupe.backup.stream_hash import StreamHasher
from repo_format import items

if TYPE_CHECKING:  # the engine, named in type hints only (sources sit below it)
    from dedupe.backup.session import BackupResult, BackupSession


def backup_stream(session: BackupSession, f: BinaryIO) -> BackupResult:
    """The whole-stream BLAKE3 runs on a thread of its own (``StreamHasher``), beside
    the chunker on the calling thread and the chunk workers."""
    hasher = StreamHasher()
    total = 0
    try:
        def seen(block: memoryview) -> None:
            nonlocal total
            total += len(block)
            hasher.update(block)

        session.store_stream(f, items.data_item, on_data=seen)
        digest = hasher.digest()
    finally:
        hasher.close()
    return session.commit(total, digest)
