"""Cut content into chunks; hash and compress them on worker threads.

The chunker (pyfastcdc), BLAKE3 and zstd all release the GIL, so a pool of worker
threads keeps both cores busy: the calling thread reads and cuts, the workers hash
and (for chunks the repository does not have yet) compress, and results are taken
back in order so item streams stay deterministic. Memory is bounded by the bytes in
flight (``MAX_BYTES_IN_FLIGHT`` of content handed to the workers and not yet taken
back), whatever the size of the input: the readers' buffers (``dedupe.buffers``) are
busy only while chunks cut from them are in flight, sealed chunks go into the pack
being built, and packs go to the storage as they are built (``Transaction``).
"""

from __future__ import annotations

import os
import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from pyfastcdc.cy import FastCDC

from dedupe.buffers import ReadInto, shared_pool
from dedupe.backup.writer import Transaction
from repo_format import codecs
from repo_format.config import ChunkerParams
from repo_format.ids import chunk_id

READ_SIZE = 8 << 20

Refs = list[tuple[bytes, int]]


def make_chunker(p: ChunkerParams) -> FastCDC:
    return FastCDC(p.avg_size, min_size=p.min_size, max_size=p.max_size,
                   normalized_chunking=p.normalization, seed=p.seed)  # type: ignore[arg-type]


def cut_blocks(chunker: FastCDC, blocks: Iterable[bytes | memoryview]) -> Iterator[memoryview]:
    """Chunks of the concatenation of ``blocks``, exactly as cutting it whole would give.

    Every chunk but the last one of a buffer is final (the cut did not depend on
    bytes past it); the last one is carried into the next buffer and cut again."""
    carry = b""
    for block in blocks:
        if not block:
            continue
        buf = memoryview(b"".join((carry, block))) if carry else memoryview(block)
        last: memoryview | None = None
        for c in chunker.cut_buf(buf):
            if last is not None:
                yield last
            last = buf[c.offset:c.offset + c.length]
        carry = bytes(last) if last is not None else b""
    if carry:
        yield memoryview(carry)


FILE_READ_SIZE = 4 << 20


def cut_file(chunker: FastCDC, f: BinaryIO, on_data: Callable[[memoryview], None] | None = None,
             size: int = FILE_READ_SIZE) -> Iterator[memoryview]:
    """Chunks of a readable file, as ``cut_blocks`` would give them. Each block is
    read into a reused buffer behind the carried-over tail (at most one chunk), so
    only the tail is copied. ``on_data`` sees every byte read, once, in order."""
    pool = shared_pool(chunker.max_size + size)
    readinto = ReadInto(f)
    carry = memoryview(b"")
    while True:
        view = pool.view()
        kept = len(carry)
        view[:kept] = carry
        carry = memoryview(b"")  # drop the view of the previous buffer
        filled = kept
        eof = False
        while filled < len(view):
            n = readinto(view[filled:])
            if not n:
                eof = True
                break
            filled += n
        data = view[:filled]
        view.release()
        if on_data is not None and filled > kept:
            on_data(data[kept:])
        last: memoryview | None = None
        for c in chunker.cut_buf(data):
            if last is not None:
                yield last
            last = data[c.offset:c.offset + c.length]
        del data
        if eof:
            if last is not None:
                yield last
            return
        carry = last if last is not None else memoryview(b"")



BATCH_BYTES = 1 << 20  # small chunks go to a worker together, up to this many bytes
# Content handed to the workers and not yet taken back, at most (more only for a single
# batch, a chunk of up to the chunker's largest size). With 2 workers this keeps both
# busy (benchmarks/RESULTS.md, "Peak memory of backups"); every byte of it holds a read
# buffer, and its sealed form waits to go into a pack.
MAX_BYTES_IN_FLIGHT = 8 << 20
BATCH_MAX = 256  # ... or this many chunks
ALONE = 256 << 10  # a chunk at least this large goes to a worker on its own
SWITCH_INTERVAL_S = 0.0005

Result = tuple[bytes, int, "bytes | None"]  # chunk id, raw length, sealed blob (None: already stored)


class _Batch:
    """Chunks handed to one worker together, and the ref lists their refs go to."""

    __slots__ = ("future", "pieces", "size", "targets")

    def __init__(self) -> None:
        self.pieces: list[memoryview] = []
        self.targets: list[Refs] = []
        self.size = 0
        self.future: Future[list[Result]] | None = None


class ChunkPipeline:
    """Ordered, bounded pipeline from content to chunk refs and items.

    ``store`` queues the chunks of some content and returns the list that will
    hold their refs; ``add_item`` queues an item behind them. ``on_item`` receives
    each item once every chunk queued before it is stored, so its refs are complete.

    Chunks travel to the workers in batches: a large chunk alone, small ones (most
    files of a root file system) together, so that the per-chunk cost on the calling
    thread is a list append; the workers hash, look up and seal them. Results are
    taken back in queue order, so refs and items stay deterministic.
    """

    def __init__(self, txn: Transaction, params: ChunkerParams, id_key: bytes, *,
                 level: int = codecs.DEFAULT_ZSTD_LEVEL, workers: int | None = None,
                 on_item: Callable[[dict[str, Any]], None] | None = None,
                 on_stored: Callable[[bytes, int], None] | None = None) -> None:
        self.txn = txn
        self.id_key = id_key
        self.level = level
        self.chunker = make_chunker(params)
        self.min_size = params.min_size
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="chunk")
        self._queue: deque[_Batch | dict[str, Any]] = deque()
        self._open: _Batch | None = None  # the batch still taking chunks (queued, not yet submitted)
        self._submitted = 0  # batches handed to the workers and not yet taken back
        self._max_in_flight = 4 * self.workers + 4  # batches
        self._bytes_in_flight = 0  # raw bytes of the batches submitted and not yet taken back
        self.max_bytes_in_flight = MAX_BYTES_IN_FLIGHT
        self.on_item = on_item
        self.on_stored = on_stored
        self.bytes_in = 0
        self.chunk_refs = 0
        # The calling thread runs Python (parsing, items) almost without pause; a worker
        # coming back from zstd or BLAKE3 waits for it to give up the GIL, by default
        # up to 5 ms each time. A shorter interval keeps the workers busy.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))

    def _process_batch(self, pieces: list[memoryview]) -> list[Result]:
        """On a worker: hash the pieces, then seal the new ones (one compression call)."""
        key, known = self.id_key, self.txn.known
        ids = [chunk_id(key, p) for p in pieces]
        new = [i for i, cid in enumerate(ids) if not known(cid)]
        sealed: list[bytes | None] = [None] * len(pieces)
        blobs = self.txn.repo.seal_chunks([ids[i] for i in new], [pieces[i] for i in new], self.level)
        for i, sealed_blob in zip(new, blobs):
            sealed[i] = sealed_blob
        return [(cid, len(p), s) for cid, p, s in zip(ids, pieces, sealed)]

    def _submit(self, data: memoryview, refs: Refs) -> None:
        self.bytes_in += len(data)
        if len(data) >= ALONE:
            self._send_open()
            batch = _Batch()
            batch.pieces.append(data)
            batch.targets.append(refs)
            batch.size = len(data)
            self._queue.append(batch)
            self._send(batch)
            return
        batch = self._open
        if batch is None:
            batch = self._open = _Batch()
            self._queue.append(batch)
        batch.pieces.append(data)
        batch.targets.append(refs)
        batch.size += len(data)
        if batch.size >= BATCH_BYTES or len(batch.pieces) >= BATCH_MAX:
            self._send_open()

    def _send_open(self) -> None:
        batch, self._open = self._open, None
        if batch is not None:
            self._send(batch)

    def _send(self, batch: _Batch) -> None:
        while self._submitted and (self._submitted >= self._max_in_flight
                                   or self._bytes_in_flight + batch.size > self.max_bytes_in_flight):
            self._drain(block=True, one=True)
        batch.future = self._pool.submit(self._process_batch, batch.pieces)
        self._submitted += 1
        self._bytes_in_flight += batch.size

    def _drain(self, block: bool, one: bool = False) -> None:
        queue = self._queue
        while queue:
            head = queue[0]
            if isinstance(head, dict):
                queue.popleft()
                if self.on_item is not None:
                    self.on_item(head)
                continue
            fut = head.future
            if fut is None:  # the open batch: wait for more chunks unless forced
                if not block or one:
                    return
                self._send_open()
                fut = head.future
                assert fut is not None
            if not block and not fut.done():
                return
            results = fut.result()
            queue.popleft()
            self._submitted -= 1
            self._bytes_in_flight -= head.size
            head.pieces = []
            add, on_stored = self.txn.add, self.on_stored
            for (cid, raw_len, sealed), target in zip(results, head.targets):
                if sealed is not None:
                    add(cid, sealed, raw_len)
                target.append((cid, raw_len))
                if on_stored is not None:
                    on_stored(cid, raw_len)
            self.chunk_refs += len(results)
            block = False  # one result per forced wait keeps the pipeline full

    def store_view(self, data: memoryview, refs: Refs | None = None) -> Refs:
        """Queue the chunks of one whole piece of content (a file, a tar member)."""
        refs = [] if refs is None else refs
        if len(data) <= self.min_size:  # the chunker would not cut it
            if data:
                self._submit(data, refs)
            return refs
        for c in self.chunker.cut_buf(data):
            self._submit(data[c.offset:c.offset + c.length], refs)
        return refs

    def store_part(self, data: memoryview, last: bool, refs: Refs) -> int:
        """Queue the chunks of a view of content that may go on (``last`` false): all
        but the uncut tail, whose length is returned; give it again at the start of
        the next view. Cuts as ``store_view`` of the whole content would."""
        if last and len(data) <= self.min_size:
            if data:
                self._submit(data, refs)
            return 0
        tail: memoryview | None = None
        for c in self.chunker.cut_buf(data):
            if tail is not None:
                self._submit(tail, refs)
            tail = data[c.offset:c.offset + c.length]
        if tail is None:
            return 0
        if last:
            self._submit(tail, refs)
            return 0
        return len(tail)

    def store_file(self, f: Any, refs: Refs | None = None,
                   on_data: Callable[[memoryview], None] | None = None) -> Refs:
        """Queue the chunks of a readable file (``cut_file``: reused buffers, no joins)."""
        refs = [] if refs is None else refs
        for piece in cut_file(self.chunker, f, on_data):
            self._submit(piece, refs)
        return refs

    def store_blocks(self, blocks: Iterable[bytes | memoryview], refs: Refs | None = None) -> Refs:
        refs = [] if refs is None else refs
        for piece in cut_blocks(self.chunker, blocks):
            self._submit(piece, refs)
        return refs

    def store_runs(self, blocks: Iterable[bytes | memoryview], make_item: Callable[[Refs], dict[str, Any]],
                   per_item: int = 1024) -> None:
        """Store content as a series of items of at most ``per_item`` chunk refs each,
        so that no single item grows with the size of the input."""
        self.store_pieces_in_runs(cut_blocks(self.chunker, blocks), make_item, per_item)

    def store_pieces_in_runs(self, pieces: Iterable[memoryview], make_item: Callable[[Refs], dict[str, Any]],
                             per_item: int = 1024) -> None:
        refs: Refs = []
        count = 0
        for piece in pieces:
            self._submit(piece, refs)
            count += 1
            if count == per_item:
                self.add_item(make_item(refs))
                refs, count = [], 0
        if count:
            self.add_item(make_item(refs))

    def add_item(self, item: dict[str, Any]) -> None:
        if not self._queue:  # nothing ahead of it (an unchanged file's item): no queueing
            if self.on_item is not None:
                self.on_item(item)
            return
        self._queue.append(item)
        self._drain(block=False)

    def flush(self) -> None:
        while self._queue:
            self._drain(block=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        sys.setswitchinterval(self._switch_interval)
