"""Any byte stream (a database dump, an image file, stdin) as one backup."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

from repo_format import items
from repo_format.ids import stream_hash

if TYPE_CHECKING:  # the engine, named in type hints only (sources sit below it)
    from dedupe.backup.session import BackupResult, BackupSession


def backup_stream(session: BackupSession, f: BinaryIO) -> BackupResult:
    """The whole-stream BLAKE3 runs on a thread of its own (it releases the GIL), in
    read order, beside the chunker on the calling thread and the chunk workers."""
    hasher = stream_hash()
    total = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-hash") as hashing:
        def seen(block: memoryview) -> None:
            nonlocal total
            total += len(block)
            hashing.submit(hasher.update, block)

        session.store_stream(f, items.data_item, on_data=seen)
    return session.commit(total, hasher.digest())
