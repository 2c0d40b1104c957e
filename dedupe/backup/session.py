"""A backup in progress: chunks in, item stream and manifest out.

Sources (``dedupe.sources.*``) feed content and items into a ``BackupSession``;
``commit`` writes the item stream's last chunks, the packs, the index segment
and finally the manifest (FORMAT.md section 12).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterable

from dedupe.backup.chunking import ChunkPipeline, Refs, cut_file
from dedupe.progress import Progress, ProgressCallback
from dedupe.repository import Repository, default_host
from dedupe.backup.writer import DEFAULT_PACK_SIZE, Transaction
from repo_format import codecs, items, manifest
from repo_format.ids import chunk_id

PROGRESS_EVERY_S = 0.25


def new_run_id() -> str:
    return os.urandom(16).hex()


class _Mark(dict):  # type: ignore[type-arg]
    """Not an item: queued in the pipeline as one so that ``action`` runs in item order."""

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__()
        self.action = action


class _Encoded(dict):  # type: ignore[type-arg]
    """An item already encoded (``add_encoded_item``), queued like any item."""

    def __init__(self, encoded: bytes) -> None:
        super().__init__()
        self.encoded = encoded


@dataclass
class BackupResult:
    id: str
    manifest: manifest.Manifest
    warnings: list[str] = field(default_factory=list)  # files that changed or vanished while read


class BackupSession:
    def __init__(self, repo: Repository, *, kind: str, group: str, run: str | None = None,
                 host: str | None = None, meta: dict[str, Any] | None = None,
                 level: int = codecs.DEFAULT_ZSTD_LEVEL, pack_size: int = DEFAULT_PACK_SIZE,
                 workers: int | None = None, progress: ProgressCallback | None = None) -> None:
        self.repo = repo
        self.kind = kind
        self.group = group
        self.run = run or new_run_id()
        self.host = host or default_host()
        self.meta = dict(meta or {})
        self.level = level
        self.time_ns = time.time_ns()
        self.txn = Transaction(repo, pack_size)
        self.pipeline = ChunkPipeline(self.txn, repo.config.chunker, repo.id_key, level=level,
                                      workers=workers, on_item=self._write_item, on_stored=self._on_ref)
        self._item_buf = bytearray()
        self._item_refs: Refs = []
        self.item_count = 0
        self._seen: set[bytes] = set()
        self.unique_bytes = 0
        self.stored_bytes = 0
        self._progress = progress
        self._last_report = 0.0
        self.bytes_read = 0

    # -- content and items ----------------------------------------------------------

    def store_blocks(self, blocks: Iterable[bytes | memoryview]) -> Refs:
        return self.pipeline.store_blocks(self._counted(blocks))

    def store_view(self, data: memoryview) -> Refs:
        """The chunks of one whole piece of content (see ``ChunkPipeline.store_view``)."""
        self.bytes_read += len(data)
        self._report()
        return self.pipeline.store_view(data)

    def store_file(self, f: Any, refs: Refs | None = None) -> Refs:
        """The chunks of a readable file (``ChunkPipeline.store_file``); ``refs`` (the
        list returned) is filled in as they are stored."""
        def seen(data: memoryview) -> None:
            self.bytes_read += len(data)
            self._report()
        return self.pipeline.store_file(f, refs, on_data=seen)

    def store_parts(self, member: Any) -> Refs:
        """The chunks of a tar member too large for one view (``TarMember.cut_views``)."""
        refs: Refs = []

        def consume(view: memoryview, last: bool) -> int:
            carry = self.pipeline.store_part(view, last, refs)
            self.bytes_read += len(view) - carry
            self._report()
            return carry

        member.cut_views(consume)
        return refs

    def store_stream(self, f: BinaryIO, make_item: Callable[[Refs], dict[str, Any]],
                     on_data: Callable[[memoryview], None] | None = None) -> None:
        """Cut a whole stream into chunks, stored as runs of items ``make_item`` builds;
        ``on_data`` sees each block as it is read, in order."""
        def seen(block: memoryview) -> None:
            self.bytes_read += len(block)
            if on_data is not None:
                on_data(block)

        self.pipeline.store_pieces_in_runs(cut_file(self.pipeline.chunker, f, seen), make_item)

    def store_runs(self, blocks: Iterable[bytes | memoryview], make_item: Any, per_item: int = 1024) -> None:
        self.pipeline.store_runs(self._counted(blocks), make_item, per_item)

    def add_item(self, item: dict[str, Any]) -> None:
        self.pipeline.add_item(item)

    def add_encoded_item(self, encoded: bytes) -> None:
        """An item as ``items.encode_item`` gives it (an unchanged file's, kept by the files cache)."""
        self.pipeline.add_item(_Encoded(encoded))

    def _counted(self, blocks: Iterable[bytes | memoryview]) -> Iterable[bytes | memoryview]:
        for b in blocks:
            self.bytes_read += len(b)
            self._report()
            yield b

    def note_reused(self, refs: list[tuple[bytes, int]]) -> None:
        """Account for chunks an item reuses without passing them through the pipeline."""
        for cid, raw_len in refs:
            self._on_ref(cid, raw_len)

    def reuse_refs(self, refs: list[tuple[bytes, int]]) -> bool:
        """``note_reused`` for chunks taken over from an earlier backup (the files
        cache), if all of them are still in the repository; else False, nothing
        accounted. One index lookup per chunk new to this backup."""
        seen = self._seen
        new = [(cid, raw_len) for cid, raw_len in refs if cid not in seen]
        if not new:
            return True
        if len(new) > 64:  # many at once: one vectorised search
            lengths = self.txn.stored_lens_if_known([cid for cid, _ in new])
        else:
            stored_len = self.txn.stored_len_if_known
            lengths = [stored_len(cid) for cid, _ in new]
        if None in lengths:
            return False
        for (cid, raw_len), stored in zip(new, lengths):
            if cid not in seen:
                seen.add(cid)
                self.unique_bytes += raw_len
                self.stored_bytes += stored  # type: ignore[operator]
        return True

    def _on_ref(self, cid: bytes, raw_len: int) -> None:
        if cid not in self._seen:
            self._seen.add(cid)
            self.unique_bytes += raw_len
            self.stored_bytes += self.txn.stored_len(cid)

    def mark_items(self, action: Callable[[int, int], None]) -> None:
        """Cut the item stream after the items added so far, then call ``action(item
        chunks so far, items so far)`` (once they are written): the items added between
        two marks are whole item chunks of their own, ``manifest.items[a:b]``, which a
        later backup can take over with ``reuse_items``."""
        def cut() -> None:
            self._store_item_chunk()
            action(len(self._item_refs), self.item_count)
        self.pipeline.add_item(_Mark(cut))

    def after_items(self, action: Callable[[], None]) -> None:
        """Call ``action`` once the items added so far are written (their refs complete);
        the item stream is not cut."""
        self.pipeline.add_item(_Mark(action))

    def reuse_items(self, refs: Refs, count: int) -> None:
        """Take over item chunks of an earlier backup, holding ``count`` items (between
        two ``mark_items``); their content chunks go to ``note_reused``."""
        def take() -> None:
            self._store_item_chunk()
            for cid, raw_len in refs:
                self._item_refs.append((cid, raw_len))
                self._on_ref(cid, raw_len)
            self.item_count += count
        self.pipeline.add_item(_Mark(take))

    def _write_item(self, item: dict[str, Any]) -> None:
        kind = type(item)
        if kind is _Mark:
            item.action()  # type: ignore[attr-defined]
            return
        encoded = item.encoded if kind is _Encoded else items.encode_item(item)  # type: ignore[attr-defined]
        self._item_buf += encoded
        self.item_count += 1
        if items.cut_after(encoded, len(self._item_buf), self.repo.config.item_chunker, self.repo.id_key):
            self._store_item_chunk()

    def _store_item_chunk(self) -> None:
        if not self._item_buf:
            return
        piece = bytes(self._item_buf)
        cid = chunk_id(self.repo.id_key, piece)
        if not self.txn.known(cid):
            self.txn.add(cid, self.repo.seal_chunk(cid, piece, self.level), len(piece))
        self._item_refs.append((cid, len(piece)))
        self._on_ref(cid, len(piece))
        self._item_buf = bytearray()

    def _report(self, final: bool = False) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if not final and now - self._last_report < PROGRESS_EVERY_S:
            return
        self._last_report = now
        self._progress(Progress("backup", self.group, self.bytes_read, None, self.txn.stats.new_bytes,
                                self.txn.stats.new_stored, self.item_count, final))

    # -- the end ----------------------------------------------------------------------

    def commit(self, size: int, stream_b3: bytes | None = None, meta: dict[str, Any] | None = None) -> BackupResult:
        try:
            self.pipeline.flush()
        finally:
            self.pipeline.close()
        self._store_item_chunk()
        st = self.txn.stats
        m = manifest.Manifest(
            kind=self.kind, group=self.group, time_ns=self.time_ns, host=self.host, run=self.run,
            size=size, items=self._item_refs, item_count=self.item_count, stream_b3=stream_b3,
            stats={"new_chunks": st.new_chunks, "new_bytes": st.new_bytes, "new_stored": st.new_stored,
                   "chunks": len(self._seen), "unique_bytes": self.unique_bytes,
                   "stored_bytes": self.stored_bytes, "duration_ns": time.time_ns() - self.time_ns},
            meta={**self.meta, **(meta or {})},
        )
        name = self.txn.commit(m)
        from dedupe import records  # here: `dedupe --help` loads no local records (test_layers)
        records.update_seen(self.repo.config.repo_id, added={name: [m.group, m.time_ns]})
        self._report(final=True)
        return BackupResult(name, m)

    def abort(self) -> None:
        self.pipeline.close()
        self.txn.abort()

    def __enter__(self) -> BackupSession:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()
