"""The write path's last steps: packs, the index segment, the manifest (commit).

Implements the writer side of FORMAT.md section 12: packs are written first, then
one index segment listing them, then the manifest, whose creation is the single
commit point. A crash before the manifest leaves only unreferenced packs and
index entries, which later backups reuse and gc reclaims.
"""

from __future__ import annotations

from dataclasses import dataclass

from dedupe.backup.tasks import TaskQueue
from dedupe.repository import Repository
from dedupe.storage import ObjectWriter, Storage
from repo_format import index, layout, manifest, pack
from repo_format.ids import object_hasher

DEFAULT_PACK_SIZE = 16 << 20


@dataclass
class WriteStats:
    new_chunks: int = 0
    new_bytes: int = 0  # raw bytes of chunks this transaction added
    new_stored: int = 0  # stored (compressed) bytes of those chunks


HAND_OVER = 4 << 20  # a pack's blobs go to the upload thread in pieces of about this size
QUEUED_PACKS = 1.5  # packs' worth of bytes handed to the upload thread and not yet stored, at most


class _PackOut:
    """One pack on its way into the storage, on the upload thread: its parts hashed
    (its name) and written as they come (``Storage.writer``: a local repository's pack
    goes to disk while it is built; an object store's is held and put at the end)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._out: ObjectWriter | None = None
        self._hash = object_hasher()

    def write(self, parts: list[bytes]) -> None:
        if self._out is None:
            self._out = self._storage.writer(layout.DATA_DIR)
        for part in parts:
            self._hash.update(part)
        self._out.write(parts)

    def finish(self) -> str:
        assert self._out is not None  # the pack's header is its first part
        name = self._hash.hexdigest()
        out, self._out = self._out, None
        out.finish(layout.pack_path(name))
        return name

    def abort(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            out.abort()


class Transaction:
    """Adds chunks to packs and commits a manifest. Not thread-safe: call from one thread.

    Packs are stored on one upload thread while the next ones are built: the blobs of
    the pack being built go to it every ``HAND_OVER`` bytes, and ``add`` waits while
    more than ``QUEUED_PACKS`` packs' worth of bytes are handed over and not yet
    stored, so memory for packs stays bounded whatever the storage's speed."""

    def __init__(self, repo: Repository, pack_size: int = DEFAULT_PACK_SIZE) -> None:
        self.repo = repo
        self.pack_size = pack_size
        self._builder = repo.new_pack_builder()
        self._out = _PackOut(repo.storage)
        self._outs: list[_PackOut] = [self._out]  # not yet finished: aborted if the transaction is
        self._handed = 0  # bytes of the pack being built handed to the upload thread
        self._pending: dict[bytes, int] = {}  # chunk id -> stored length, of the chunks added
        self._records: list[tuple[str, int, int, bytes]] = []  # packs stored: name, size, table_len, packed entries
        self._upload = TaskQueue("pack-upload", int(QUEUED_PACKS * pack_size))
        self.stats = WriteStats()

    def known(self, cid: bytes) -> bool:
        return cid in self._pending or self.repo.has_chunk(cid)

    def stored_len_if_known(self, cid: bytes) -> int | None:
        got = self._pending.get(cid)
        return got if got is not None else self.repo.stored_len_if_indexed(cid)

    def stored_lens_if_known(self, cids: list[bytes]) -> list[int | None]:
        pending = self._pending
        out = self.repo.stored_lens_if_indexed(cids)
        return [pending[c] if c in pending else n for c, n in zip(cids, out)]

    def stored_len(self, cid: bytes) -> int:
        got = self._pending.get(cid)
        return got if got is not None else self.repo.locate(cid).length

    def add(self, cid: bytes, sealed: bytes, raw_len: int) -> bool:
        """Store a sealed blob unless the chunk is known. Returns whether it was new."""
        if self.known(cid):
            return False
        self._builder.add(cid, sealed, raw_len)
        self._pending[cid] = len(sealed)
        self.stats.new_chunks += 1
        self.stats.new_bytes += raw_len
        self.stats.new_stored += len(sealed)
        if self._builder.size >= self.pack_size:
            self._flush_pack()
        elif self._builder.size - self._handed >= HAND_OVER:
            self._upload.submit(self._builder.size - self._handed, self._out.write, self._builder.take_parts())
            self._handed = self._builder.size
        return True

    def _flush_pack(self) -> None:
        if not len(self._builder):
            return
        builder, self._builder = self._builder, self.repo.new_pack_builder()
        out, self._out = self._out, _PackOut(self.repo.storage)
        self._outs.append(self._out)
        self._handed = 0
        # counted whole: an object store holds the whole pack until it is put
        self._upload.submit(builder.size, self._store_pack, builder, out)

    def _store_pack(self, builder: pack.PackBuilder, out: _PackOut) -> None:
        """On the upload thread: close the pack (table, name) and store it."""
        parts, table_len = builder.close()
        out.write(parts)
        name = out.finish()
        self._outs.remove(out)
        self._records.append((name, builder.size, table_len, builder.packed_entries))

    def commit(self, m: manifest.Manifest) -> str:
        """Write the remaining pack, the index segment, then the manifest. Returns the backup id."""
        try:
            self._flush_pack()
            self._upload.wait()
        except BaseException:
            self.abort()
            raise
        self._upload.close()
        if self._records:
            self.repo.write_segment_packed(self._records, [])
            self.repo.add_segment_packed(self._records)
        name = self.repo.write_manifest(m)
        self._records = []
        self._pending.clear()
        return name

    def abort(self) -> None:
        """Stop without committing: written packs stay unreferenced until gc; the one
        being written is removed."""
        self._upload.close(cancel=True)
        for out in self._outs:
            out.abort()
        self._outs = []
