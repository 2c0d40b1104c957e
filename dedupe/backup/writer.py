"""The write path's last steps: packs, the index segment, the manifest (commit).

Implements the writer side of FORMAT.md section 12: packs are written first, then
one index segment listing them, then the manifest, whose creation is the single
commit point. A crash before the manifest leaves only unreferenced packs and
index entries, which later backups reuse and gc reclaims.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from dedupe.repository import Repository
from repo_format import index, layout, manifest, pack

DEFAULT_PACK_SIZE = 16 << 20


@dataclass
class WriteStats:
    new_chunks: int = 0
    new_bytes: int = 0  # raw bytes of chunks this transaction added
    new_stored: int = 0  # stored (compressed) bytes of those chunks


class Transaction:
    """Adds chunks to packs and commits a manifest. Not thread-safe: call from one thread."""

    def __init__(self, repo: Repository, pack_size: int = DEFAULT_PACK_SIZE) -> None:
        self.repo = repo
        self.pack_size = pack_size
        self._builder = repo.new_pack_builder()
        self._pending: dict[bytes, tuple[int, int]] = {}  # chunk id -> (stored length, raw length)
        self._records: list[index.PackRecord] = []
        self._upload = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pack-upload")
        self._in_flight: Future[None] | None = None
        self.stats = WriteStats()

    def known(self, cid: bytes) -> bool:
        return cid in self._pending or self.repo.has_chunk(cid)

    def stored_len_if_known(self, cid: bytes) -> int | None:
        got = self._pending.get(cid)
        return got[0] if got is not None else self.repo.stored_len_if_indexed(cid)

    def stored_lens_if_known(self, cids: list[bytes]) -> list[int | None]:
        pending = self._pending
        out = self.repo.stored_lens_if_indexed(cids)
        return [pending[c][0] if c in pending else n for c, n in zip(cids, out)]

    def stored_len(self, cid: bytes) -> int:
        got = self._pending.get(cid)
        return got[0] if got is not None else self.repo.locate(cid).length

    def add(self, cid: bytes, sealed: bytes, raw_len: int) -> bool:
        """Store a sealed blob unless the chunk is known. Returns whether it was new."""
        if self.known(cid):
            return False
        self._builder.add(cid, sealed, raw_len)
        self._pending[cid] = (len(sealed), raw_len)
        self.stats.new_chunks += 1
        self.stats.new_bytes += raw_len
        self.stats.new_stored += len(sealed)
        if self._builder.size >= self.pack_size:
            self._flush_pack()
        return True

    def _flush_pack(self) -> None:
        if not len(self._builder):
            return
        builder, self._builder = self._builder, self.repo.new_pack_builder()
        self._wait_upload()
        self._in_flight = self._upload.submit(self._store_pack, builder)

    def _store_pack(self, builder: pack.PackBuilder) -> None:
        """On the upload thread: close the pack (table, name) and store it."""
        name, parts, table_len = builder.finish_parts()
        self.repo.storage.put(layout.pack_path(name), parts)  # written part by part (no joined copy)
        self._records.append(index.PackRecord(name, builder.size, table_len, builder.entries))

    def _wait_upload(self) -> None:
        if self._in_flight is not None:
            fut, self._in_flight = self._in_flight, None
            fut.result()

    def commit(self, m: manifest.Manifest) -> str:
        """Write the remaining pack, the index segment, then the manifest. Returns the backup id."""
        try:
            self._flush_pack()
            self._wait_upload()
        finally:
            self._upload.shutdown(wait=True)
        if self._records:
            seg = index.IndexSegment(packs=self._records)
            self.repo.write_segment(seg)
            self.repo.add_segment(seg)
        name = self.repo.write_manifest(m)
        self._records = []
        self._pending.clear()
        return name

    def abort(self) -> None:
        """Stop without committing: written packs stay unreferenced until gc."""
        self._upload.shutdown(wait=True, cancel_futures=True)
