"""The compact chunk index behaves like a dict with first-write-wins semantics."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe import chunk_index
from dedupe.chunk_index import ChunkIndex

ids = st.binary(min_size=32, max_size=32)
values = st.tuples(*[st.integers(0, 2**32 - 1)] * 4)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(ids, values), max_size=60), st.integers(1, 7))
def test_behaves_like_a_first_write_wins_dict(entries: list, merge_at: int) -> None:  # type: ignore[type-arg]
    old = chunk_index.MERGE_AT
    chunk_index.MERGE_AT = merge_at
    try:
        idx, ref = ChunkIndex(), {}
        for cid, v in entries:
            idx.add(cid, v)
            ref.setdefault(cid, v)
        idx.compact()
        assert len(idx) == len(ref)
        for cid, v in ref.items():
            assert cid in idx and idx.get(cid) == v
        assert dict(idx.items()) == ref
        assert idx.get(b"\xff" * 32) is None or b"\xff" * 32 in ref
        asked = [*ref, b"\xff" * 32, b"\x00" * 32]
        assert idx.stored_lengths(asked) == [ref[c][2] if c in ref else None for c in asked]
        assert idx.get_many(asked) == [idx.get(c) for c in asked]
    finally:
        chunk_index.MERGE_AT = old


def test_ids_sharing_a_prefix() -> None:
    idx = ChunkIndex()
    a, b = b"P" * 8 + os.urandom(24), b"P" * 8 + os.urandom(24)
    idx.add_many([(a, (1, 2, 3, 4)), (b, (5, 6, 7, 8)), (a, (9, 9, 9, 9))])
    idx.compact()
    assert idx.get(a) == (1, 2, 3, 4) and idx.get(b) == (5, 6, 7, 8) and len(idx) == 2
    assert idx.get(b"P" * 8 + bytes(24)) is None
    assert idx.stored_lengths([b, a, b"P" * 8 + bytes(24)]) == [7, 3, None]


def test_get_many_is_get_of_each() -> None:
    """The vectorised lookup finds what ``get`` finds: merged ids, pending ones, ids whose
    8-byte prefix another id shares (the one after the first with that prefix too),
    missing ids, and a ref that is not an id at all (a damaged item's)."""
    idx = ChunkIndex()
    shared = [b"Q" * 8 + os.urandom(24) for _ in range(3)]
    merged = [os.urandom(32) for _ in range(50)] + shared
    idx.add_many([(c, (i, i + 1, i + 2, i + 3)) for i, c in enumerate(merged)])
    idx.compact()
    pending = os.urandom(32)
    idx.add(pending, (7, 7, 7, 7))
    asked = [*reversed(merged), pending, os.urandom(32), b"Q" * 8 + bytes(24), b"short", merged[3], b""]
    got = idx.get_many(asked)
    assert got == [idx.get(c) for c in asked]
    assert got[:len(merged)] == [(i, i + 1, i + 2, i + 3) for i in reversed(range(len(merged)))]
    assert got[len(merged)] == (7, 7, 7, 7) and got[len(merged) + 1:len(merged) + 4] == [None] * 3 and got[-1] is None
    assert ChunkIndex().get_many(asked) == [None] * len(asked)
    # stored_lengths: the vectorised path (ids only: merged, pending, shared prefix, missing)
    # and the one for refs that are not ids give get's third field
    ids_only = [c for c in asked if len(c) == 32]
    for some in (ids_only, asked):
        assert idx.stored_lengths(some) == [None if (v := idx.get(c)) is None else v[2] for c in some]
    assert idx.stored_lengths(ids_only)[:len(merged)] == [i + 2 for i in reversed(range(len(merged)))]


def test_memory_per_chunk_is_small() -> None:
    idx = ChunkIndex()
    idx.add_many([(os.urandom(32), (1, 2, 3, 4)) for _ in range(100_000)])
    idx.compact()
    assert idx.nbytes() / len(idx) <= 56
