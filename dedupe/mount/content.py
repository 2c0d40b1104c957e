"""Random reads of one file's content: only the chunks a read covers, each verified.

A file's content is its chunks back to back, less a prefix that is not content (a
tar member's chunks may start with bytes of the archive, FORMAT.md section 9.2); a
sparse file's content is its data segments back to back, holes read as zeros. A read
finds the chunks it needs by bisecting the chunks' offsets, fetches each with one
ranged read of its blob and opens it against its id. Chunks live in a cache bounded
in bytes, shared by every open file; a read that continues where the last one of the
same file ended fetches the next chunks ahead on worker threads.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate

from dedupe.entries import ChunkRef
from dedupe.repository import Repository

CACHE_BYTES = 96 << 20  # plaintext chunks kept, whatever the repository or file size
READ_AHEAD = 8  # chunks fetched ahead of a sequential reader
FILES_AHEAD = 32  # when a file is opened, the first chunks of this many files after it in its directory
FILES_AHEAD_BYTES = 16 << 20  # ... up to this much plaintext
WORKERS = 6


@dataclass
class Content:
    """Where a file's bytes are: ``chunks`` from ``prefix`` on; ``sparse`` as in Entry."""

    chunks: list[ChunkRef]
    size: int
    prefix: int = 0
    sparse: list[tuple[int, int]] | None = None
    _starts: list[int] = field(default_factory=list, repr=False)
    next_offset: int = field(default=-1, repr=False)  # where the last read ended (read-ahead)

    def starts(self) -> list[int]:
        if not self._starts and self.chunks:
            self._starts = [0, *accumulate(n for _, n in self.chunks)]
        return self._starts


class ChunkCache:
    """Opened chunks by id (LRU, bounded in bytes), fetched on a small thread pool;
    concurrent reads of one chunk share one fetch."""

    def __init__(self, repo: Repository, max_bytes: int = CACHE_BYTES, workers: int = WORKERS) -> None:
        self.repo = repo
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, Future[bytes]] = OrderedDict()
        self._sizes: dict[bytes, int] = {}
        self._bytes = 0
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mount-read")
        self.fetched = 0  # chunks read from storage (for tests and benchmarks)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _fetch(self, cid: bytes) -> bytes:
        loc = self.repo.locate(cid)
        sealed = self.repo.read_pack_range(loc.pack, loc.offset, loc.length)
        data = self.repo.open_chunk(cid, memoryview(sealed), loc.pack)
        with self._lock:
            self.fetched += 1
        return data

    def get(self, ref: ChunkRef) -> Future[bytes]:
        cid, n = ref
        with self._lock:
            fut = self._cache.get(cid)
            if fut is not None:
                self._cache.move_to_end(cid)
                return fut
            fut = self._pool.submit(self._fetch, cid)
            self._cache[cid] = fut
            self._sizes[cid] = n
            self._bytes += n
            while self._bytes > self.max_bytes and len(self._cache) > 1:
                old, _ = self._cache.popitem(last=False)
                self._bytes -= self._sizes.pop(old)
            return fut

    def drop(self, cid: bytes) -> None:
        """Forget a chunk whose fetch failed (the next read tries again)."""
        with self._lock:
            if self._cache.pop(cid, None) is not None:
                self._bytes -= self._sizes.pop(cid)


def _data_ranges(c: Content, offset: int, size: int) -> list[tuple[int, int, int]]:
    """(file offset, data offset, length) of the stored bytes in [offset, offset+size)."""
    end = min(offset + size, c.size)
    if offset >= end:
        return []
    if c.sparse is None:
        return [(offset, offset, end - offset)]
    out = []
    data = 0
    for seg_off, seg_len in c.sparse:
        lo, hi = max(offset, seg_off), min(end, seg_off + seg_len)
        if lo < hi:
            out.append((lo, data + lo - seg_off, hi - lo))
        data += seg_len
    return out


def read(cache: ChunkCache, c: Content, offset: int, size: int) -> bytes:
    """``size`` bytes of the file from ``offset`` (fewer at its end)."""
    end = min(offset + size, c.size)
    if offset >= end:
        return b""
    out = bytearray(end - offset)  # holes stay zero
    starts = c.starts()
    last = -1
    for file_off, data_off, length in _data_ranges(c, offset, end - offset):
        pos = c.prefix + data_off
        stop = pos + length
        i = bisect.bisect_right(starts, pos) - 1
        while pos < stop:
            cid = c.chunks[i][0]
            try:
                chunk = cache.get(c.chunks[i]).result()
            except BaseException:
                cache.drop(cid)
                raise
            lo = pos - starts[i]
            take = min(stop - pos, len(chunk) - lo)
            at = file_off - offset + (pos - c.prefix - data_off)
            out[at:at + take] = chunk[lo:lo + take]
            pos += take
            last = i
            i += 1
    if last >= 0 and offset == c.next_offset:  # sequential: fetch what comes next
        for j in range(last + 1, min(last + 1 + READ_AHEAD, len(c.chunks))):
            cache.get(c.chunks[j])
    c.next_offset = end
    return bytes(out)


def prefetch(cache: ChunkCache, contents: list[Content]) -> None:
    """Start fetching the first chunks of files a tree reader is likely to open next."""
    budget = FILES_AHEAD_BYTES
    for c in contents:
        for ref in c.chunks[:2]:
            if budget <= 0:
                return
            cache.get(ref)
            budget -= ref[1]
