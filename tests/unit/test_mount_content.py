"""Random reads of file content by chunk (dedupe.mount.content), against a memory repository."""

from __future__ import annotations

import os

from dedupe.mount.content import ChunkCache, Content, read
from dedupe.repository import Repository


class FakeCache(ChunkCache):
    def __init__(self, chunks: dict[bytes, bytes]) -> None:
        super().__init__(Repository.__new__(Repository), max_bytes=1 << 20, workers=1)
        self.chunks = chunks

    def _fetch(self, cid: bytes) -> bytes:
        self.fetched += 1
        return self.chunks[cid]


def test_reads_across_chunks_with_a_prefix_and_holes() -> None:
    parts = [os.urandom(n) for n in (100, 250, 50, 400)]
    chunks = {bytes([i]) * 32: p for i, p in enumerate(parts)}
    refs = [(cid, len(p)) for cid, p in chunks.items()]
    stream = b"".join(parts)
    cache = FakeCache(chunks)
    dense = Content(refs, len(stream) - 30, prefix=30)
    want = stream[30:]
    for off, n in [(0, 10), (60, 200), (319, 2), (0, 10_000), (len(want) - 5, 100), (len(want), 10)]:
        assert read(cache, dense, off, n) == want[off:off + n]
    cache = FakeCache(chunks)
    assert read(cache, dense, 100, 10) == want[100:110] and cache.fetched == 1
    # sparse: segments (0, 100) and (1000, 600) of the 800 bytes after the prefix
    sparse = Content(refs, 2000, prefix=0, sparse=[(0, 100), (1000, 700)])
    image = stream[:100] + bytes(900) + stream[100:800] + bytes(300)
    for off, n in [(0, 2000), (50, 100), (990, 20), (1690, 400), (1200, 1)]:
        assert read(FakeCache(chunks), sparse, off, n) == image[off:off + n]
