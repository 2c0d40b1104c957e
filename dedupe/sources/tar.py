"""File-aligned tar backups: each member's data chunked on its own.

The raw header blocks of each member are kept in its item (FORMAT.md section 9.2),
so the restore rebuilds the original stream byte for byte; the manifest records
the stream's BLAKE3, which the restore checks.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from dedupe.backup import BackupResult, BackupSession
from dedupe.sources.tarstream import TarReader
from repo_format import items
from repo_format.ids import stream_hash


class HashingReader:
    """A read-only stream that hashes and counts what passes through it."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.hasher = stream_hash()
        self.count = 0

    def read(self, n: int = -1, /) -> bytes:
        data = self.f.read(n)
        self.hasher.update(data)
        self.count += len(data)
        return data


def member_item(header: bytes, entry_item: dict[str, Any], data_prefix: int, padding: bytes) -> dict[str, Any]:
    item: dict[str, Any] = {"k": items.ITEM_TAR_MEMBER, "h": header, "e": entry_item}
    if data_prefix:
        item["dp"] = data_prefix
    if padding.count(0) == len(padding):
        if padding:
            item["pl"] = len(padding)
    else:
        item["pad"] = padding
    return item


def backup_tar(session: BackupSession, f: BinaryIO) -> BackupResult:
    src = HashingReader(f)
    reader = TarReader(src)
    for member in reader:
        entry_item = member.entry.to_item()
        if member.data_size:
            entry_item["c"] = session.store_blocks(member.iter_raw())  # filled in as the chunks are stored
        else:
            entry_item.pop("c", None)
        session.add_item(member_item(member.header, entry_item, member.data_prefix, member.padding))
    session.store_runs(reader.iter_tail(), lambda refs: {"k": items.ITEM_TAR_TAIL, "c": refs})
    session.bytes_read = src.count
    return session.commit(src.count, src.hasher.digest())
