"""Cutting content into chunks, and the ordered pipeline."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe.backup.chunking import cut_blocks, make_chunker
from repo_format.config import ChunkerParams

SMALL = ChunkerParams(min_size=256, avg_size=1024, max_size=4096)
DATA = os.urandom(200_000)


def whole(data: bytes) -> list[int]:
    return [c.length for c in make_chunker(SMALL).cut_buf(data)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=20_000), min_size=1, max_size=40))
def test_cut_points_do_not_depend_on_how_the_input_is_fed(sizes: list[int]) -> None:
    pieces, pos = [], 0
    for s in sizes:
        pieces.append(DATA[pos:pos + s])
        pos += s
    pieces.append(DATA[pos:])
    got = [bytes(c) for c in cut_blocks(make_chunker(SMALL), pieces)]
    assert b"".join(got) == DATA
    assert [len(c) for c in got] == whole(DATA)


@pytest.mark.parametrize("seed", range(8))
def test_edit_in_the_middle_changes_few_chunks(seed: int) -> None:
    import blake3
    base = blake3.blake3(b"edit %d" % seed).digest(length=2_000_000)  # seeded: the same cut points every run
    edited = base[:1_000_000] + b"INSERTED" + base[1_000_000:]
    a = {bytes(c) for c in cut_blocks(make_chunker(SMALL), [base])}
    b = [bytes(c) for c in cut_blocks(make_chunker(SMALL), [edited])]
    new = [c for c in b if c not in a]
    # content-defined: the cut points resynchronise within a chunk or two of the edit
    # (about 500 chunks of ~4 KiB in all)
    assert 1 <= len(new) <= 4
    assert sum(map(len, new)) <= 4 * SMALL.max_size


def test_empty_input_has_no_chunks() -> None:
    assert list(cut_blocks(make_chunker(SMALL), [])) == []
    assert list(cut_blocks(make_chunker(SMALL), [b""])) == []


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=50_000), st.integers(min_value=0, max_value=200_000))
def test_reading_a_file_cuts_like_cutting_it_whole(read_size: int, length: int) -> None:
    import io

    from dedupe.backup.chunking import cut_file
    data = DATA[:length]
    seen: list[bytes] = []
    got = [bytes(c) for c in cut_file(make_chunker(SMALL), io.BytesIO(data), lambda b: seen.append(bytes(b)),
                                      size=read_size)]
    assert [len(c) for c in got] == whole(data)
    assert b"".join(got) == data and b"".join(seen) == data  # on_data sees every byte once, in order


def test_read_buffers_are_reused_only_when_free() -> None:
    from dedupe.buffers import BufferPool
    pool = BufferPool(1024, keep=2)
    a = pool.get()
    held = memoryview(a)[10:20]  # a chunk still in flight
    b = pool.get()
    assert b is not a
    held.release()
    assert pool.get() is a  # free again: reused, no new allocation


def test_readers_without_readinto_are_read_too() -> None:
    from dedupe.backup.chunking import cut_file

    class OnlyRead:
        def __init__(self, data: bytes) -> None:
            self.data, self.pos = data, 0

        def read(self, n: int) -> bytes:
            out = self.data[self.pos:self.pos + min(n, 777)]  # short reads, too
            self.pos += len(out)
            return out

    data = DATA[:150_000]
    got = [bytes(c) for c in cut_file(make_chunker(SMALL), OnlyRead(data), size=10_000)]  # type: ignore[arg-type]
    assert [len(c) for c in got] == whole(data) and b"".join(got) == data


class _Txn:
    """The little of a Transaction the pipeline uses: every chunk is new."""

    def __init__(self) -> None:
        self.added: list[bytes] = []
        self.repo = self

    def known(self, cid: bytes) -> bool:
        return False

    def seal_chunks(self, cids: list[bytes], datas: list[memoryview], level: int) -> list[bytes]:
        return [bytes(d) for d in datas]

    def add(self, cid: bytes, sealed: bytes, raw_len: int) -> None:
        self.added.append(sealed)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=30_000), min_size=1, max_size=30),
       st.integers(min_value=5_000, max_value=40_000))
def test_pipeline_views_and_parts_cut_like_cutting_whole(sizes: list[int], view_size: int) -> None:
    """store_view (whole content) and store_part (views with the uncut tail carried)
    give each content the chunks cutting it whole gives, in order, with items in
    between kept in order, whatever the batching."""
    from dedupe.backup.chunking import ChunkPipeline
    txn = _Txn()
    seen: list[object] = []
    pipeline = ChunkPipeline(txn, SMALL, b"k" * 32, workers=2, on_item=seen.append)  # type: ignore[arg-type]
    expected = []
    pos = 0
    for i, size in enumerate(sizes):
        data = DATA[pos:pos + size]
        pos = (pos + size) % 100_000
        expected.append([len(c) for c in cut_blocks(make_chunker(SMALL), [data])])
        if i % 2:
            refs = pipeline.store_view(memoryview(data))
        else:
            refs = []
            view = memoryview(data)
            carry = 0
            start = 0
            while True:
                end = min(len(data), start + view_size)
                carry = pipeline.store_part(view[start:end], end == len(data), refs)
                if end == len(data):
                    break
                start = end - carry
        pipeline.add_item({"i": i, "refs": refs})
    pipeline.flush()
    pipeline.close()
    assert [item["i"] for item in seen] == list(range(len(sizes)))  # type: ignore[index]
    assert [[n for _, n in item["refs"]] for item in seen] == expected  # type: ignore[index]
    assert sum(map(len, txn.added)) == sum(sizes)
