"""File-aligned tar backups: each member's data chunked on its own.

The raw header blocks of each member are kept in its item (FORMAT.md section 9.2),
so the restore rebuilds the original stream byte for byte; the manifest records
the stream's BLAKE3, which the restore checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

from dedupe.backup.stream_hash import StreamHasher
from dedupe.memory import heap_buffers_up_to
from dedupe.sources.tarstream import TarReader
from repo_format import items

if TYPE_CHECKING:  # the engine, named in type hints only (sources sit below it)
    from dedupe.backup.session import BackupResult, BackupSession


class HashingReader:
    """A read-only stream that hashes (``StreamHasher``) and counts what passes
    through it. ``readinto`` hands the hasher a view of the caller's buffer, which the
    caller must not overwrite before ``digest`` (the tar reader's buffers are reused
    only once no view of them is left)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.hasher = StreamHasher()
        self.count = 0
        readinto = getattr(f, "readinto", None)
        if readinto is None:
            self.readinto = None  # type: ignore[assignment]  # the tar reader then uses read

    def read(self, n: int = -1, /) -> bytes:
        data = self.f.read(n)
        self._update(data)
        return data

    def readinto(self, view: memoryview, /) -> int:  # type: ignore[no-redef]
        n = self.f.readinto(view)  # type: ignore[attr-defined]
        if n:
            self._update(view[:n])
        return n or 0

    def _update(self, data: bytes | memoryview) -> None:
        self.count += len(data)
        self.hasher.update(data)

    def digest(self) -> bytes:
        return self.hasher.digest()

    def close(self) -> None:
        self.hasher.close()


VIEW_SIZE = 8 << 20  # members up to this size are read as one view and cut whole
# Compressed and sealed chunks (up to a little over the 4 MiB largest chunk) come from
# the heap, reused, instead of each being a fresh mapping whose pages fault in one by one.
HEAP_BUFFERS = 5 << 20


def backup_tar(session: BackupSession, f: BinaryIO) -> BackupResult:
    with heap_buffers_up_to(HEAP_BUFFERS):
        return _backup_tar(session, f)


def _backup_tar(session: BackupSession, f: BinaryIO) -> BackupResult:
    src = HashingReader(f)
    try:
        reader = TarReader(src, view_size=VIEW_SIZE)
        for member in reader:
            entry_item = member.entry.to_item()
            size = member.data_size
            if size:
                if size <= VIEW_SIZE and not member.data_prefix:
                    refs = session.store_view(member.read_view())
                elif not member.data_prefix:
                    refs = session.store_parts(member)
                else:
                    refs = session.store_blocks(member.iter_raw(VIEW_SIZE))
                items.set_entry_chunks(entry_item, refs)  # filled in as the chunks are stored
            else:
                items.set_entry_chunks(entry_item, None)
            session.add_item(items.member_item(member.header, entry_item, member.data_prefix, member.padding))
        session.store_runs(reader.iter_tail(), items.tail_item)
        digest = src.digest()
    finally:
        src.close()
    session.bytes_read = src.count
    return session.commit(src.count, digest)
