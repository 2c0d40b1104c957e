"""gc's phase 1 writes: the partly used packs worth rewriting (``choose_repacks``), their
referenced blobs copied, verified, into new packs (``Repacker``), and the index of
every pack that stays written into new segments (``SegmentWriter``)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from dedupe.maintenance.gc_mark import PackUse, Record, packed_rows
from dedupe.repository import CorruptObject, Repository
from repo_format import layout, pack


def choose_repacks(packs: dict[str, PackUse], max_unused: float) -> set[str]:
    """The partly used packs to rewrite, most wasteful first, until the unreferenced
    bytes left in kept packs are at most ``max_unused`` of all kept bytes."""
    partly = sorted((p for p in packs.items() if 0 < p[1].live < p[1].total),
                    key=lambda kv: (kv[1].live / kv[1].total, kv[0]))
    unused = sum(p.total - p.live for p in packs.values() if p.live)
    stored = sum(p.live for p in packs.values()) + unused
    chosen = set()
    for name, p in partly:
        if unused <= max_unused * stored:
            break
        chosen.add(name)
        unused -= p.total - p.live
        stored -= p.total - p.live
    return chosen


# -- writing ------------------------------------------------------------------------------------

class SegmentWriter:
    """Writes pack records into index segments of at most ``segment_entries`` chunks."""

    def __init__(self, repo: Repository, segment_entries: int) -> None:
        self.repo = repo
        self.segment_entries = segment_entries
        self.records: list[Record] = []
        self.entries = 0
        self.written: list[str] = []
        self.packs: set[str] = set()

    def add(self, rec: Record) -> None:
        self.records.append(rec)
        self.packs.add(rec[0])
        self.entries += len(rec[3]) // pack.ENTRY_LEN
        if self.entries >= self.segment_entries:
            self.flush()

    def flush(self, supersedes: list[str] | None = None) -> None:
        if self.records or supersedes:
            self.written.append(self.repo.write_segment_packed(self.records, supersedes or []))
        self.records, self.entries = [], 0


class Repacker:
    """Copies verified blobs into new packs, as a pipeline over both cores: the next
    pack is read while this one's blobs are verified (on two threads: zstd and BLAKE3
    release the GIL), and a finished pack is stored while the next one fills. A new
    pack's record reaches the index (``out``) only once the pack is stored."""

    def __init__(self, repo: Repository, pack_size: int, out: SegmentWriter) -> None:
        self.repo = repo
        self.pack_size = pack_size
        self.out = out
        self.packs_written = 0
        self.bytes_written = 0
        self.builder = repo.new_pack_builder()
        self._verifiers = ThreadPoolExecutor(2, thread_name_prefix="gc-verify")
        self._storer = ThreadPoolExecutor(1, thread_name_prefix="gc-store")
        self._storing: tuple[Future[None], Record] | None = None

    def copy_all(self, todo: list[tuple[Record, np.ndarray]]) -> None:
        """Copy the blobs each ``live`` mask marks, each opened and checked against its
        id first (a damaged pack stops gc; nothing unverified is copied)."""
        with ThreadPoolExecutor(1, thread_name_prefix="gc-read") as reader:
            def fetch(rec: Record) -> Future[bytes]:
                return reader.submit(self.repo.storage.get, layout.pack_path(rec[0]))
            ahead = fetch(todo[0][0]) if todo else None
            for i, (rec, live) in enumerate(todo):
                assert ahead is not None
                data = ahead.result()
                ahead = fetch(todo[i + 1][0]) if i + 1 < len(todo) else None
                self._copy(rec, live, data)

    def _copy(self, rec: Record, live: np.ndarray, data: bytes) -> None:
        rows = packed_rows(rec[3])[live]
        blobs = []
        for cid, off, length, raw in zip(rows["id"], rows["off"].tolist(), rows["len"].tolist(), rows["raw"].tolist()):
            sealed = data[off:off + length]
            if len(sealed) != length:
                raise CorruptObject(f"pack {layout.pack_path(rec[0])} is truncated")
            blobs.append((cid.tobytes(), sealed, raw))
        def verify(blob: tuple[bytes, bytes, int]) -> None:
            self.repo.open_chunk(blob[0], blob[1], rec[0])  # raises if the blob is damaged

        for _ in self._verifiers.map(verify, blobs):
            pass
        for cid, sealed, raw in blobs:
            self.builder.add(cid, sealed, raw)
            if self.builder.size >= self.pack_size:
                self.flush()

    def flush(self) -> None:
        """Store the pack being built (in the background) after the previous one is in."""
        self._settle()
        if not len(self.builder):
            return
        name, parts, table_len = self.builder.finish_parts()
        record = (name, self.builder.size, table_len, self.builder.packed_entries)
        self._storing = (self._storer.submit(self.repo.storage.put, layout.pack_path(name), parts), record)
        self.builder = self.repo.new_pack_builder()

    def close(self) -> None:
        """Store what is left and wait for it; then every new pack is in ``out``."""
        self.flush()
        self._settle()

    def shutdown(self) -> None:
        """End the threads (after a failure too: a pack being stored is finished, and
        stays unindexed until a later gc removes it)."""
        self._verifiers.shutdown()
        self._storer.shutdown()

    def _settle(self) -> None:
        if self._storing is None:
            return
        done, record = self._storing
        self._storing = None
        done.result()
        self.out.add(record)
        self.packs_written += 1
        self.bytes_written += record[1]
