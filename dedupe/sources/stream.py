"""Any byte stream (a database dump, an image file, stdin) as one backup."""

from __future__ import annotations

from typing import BinaryIO, Iterator

from dedupe.backup import BackupResult, BackupSession
from dedupe.chunking import READ_SIZE
from repo_format import items
from repo_format.ids import stream_hash


def hashed_blocks(f: BinaryIO, hasher: object, counter: list[int], size: int = READ_SIZE) -> Iterator[bytes]:
    """Blocks of ``f``, fed to ``hasher`` and counted on the way."""
    while True:
        block = f.read(size)
        if not block:
            return
        hasher.update(block)  # type: ignore[attr-defined]
        counter[0] += len(block)
        yield block


def backup_stream(session: BackupSession, f: BinaryIO) -> BackupResult:
    hasher = stream_hash()
    counter = [0]
    session.store_runs(hashed_blocks(f, hasher, counter), lambda refs: {"k": items.ITEM_DATA, "c": refs})
    return session.commit(counter[0], hasher.digest())
