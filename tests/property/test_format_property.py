"""Hypothesis round trips for every codec of repo_format."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe.entries import Entry
from repo_format import blob, config, index, items, lock, manifest, pack
from repo_format.errors import FormatError
from repo_format.ids import object_name

ids = st.binary(min_size=32, max_size=32)
u32 = st.integers(min_value=0, max_value=2**32 - 1)
refs = st.lists(st.tuples(ids, u32), max_size=20)
text = st.text(max_size=40)


@given(st.binary(max_size=50_000), st.integers(min_value=0, max_value=10))
def test_blob(data: bytes, level: int) -> None:
    assert blob.open_blob(blob.seal(data, level), "b") == data


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=3000), max_size=12))
def test_pack(chunks: list[bytes]) -> None:
    b = pack.PackBuilder()
    for i, c in enumerate(chunks):
        b.add(i.to_bytes(32, "little"), blob.seal(c), len(c))
    name, data, table_len = b.finish()
    assert name == object_name(data)
    entries = pack.parse_pack(data, "p")
    assert [blob.open_blob(s, "b") for _, s in pack.iter_blobs(data, entries)] == chunks
    assert pack.decode_table(data[-table_len:], len(data), "p") == entries


entry_st = st.builds(pack.PackEntry, ids, u32, u32, u32)


@given(st.lists(st.tuples(ids, u32, u32, st.lists(entry_st, max_size=5)), max_size=5),
       st.lists(ids, max_size=3))
def test_index_segment(packs: list, supersedes: list[bytes]) -> None:  # type: ignore[type-arg]
    seg = index.IndexSegment([index.PackRecord(n.hex(), s, t, e) for n, s, t, e in packs],
                             [s.hex() for s in supersedes])
    assert index.decode(index.encode(seg), "i") == seg


@given(st.sampled_from(["stream", "tar", "dir"]), text, st.integers(min_value=0, max_value=2**63), text,
       st.integers(min_value=0, max_value=2**62), refs, st.none() | ids,
       st.dictionaries(st.text(max_size=10), st.integers(min_value=0, max_value=2**62), max_size=4),
       st.dictionaries(st.text(max_size=10), st.text(max_size=10) | st.integers(-2**63, 2**64 - 1), max_size=4))
def test_manifest(kind, group, t, host, size, item_refs, b3, stats, meta) -> None:  # type: ignore[no-untyped-def]
    m = manifest.Manifest(kind=kind, group=group, time_ns=t, host=host, run="0" * 32, size=size,
                          items=item_refs, item_count=len(item_refs), stream_b3=b3, stats=stats, meta=meta)
    assert manifest.decode(manifest.encode(m), "m") == m


names = st.text(min_size=1, max_size=60).filter(lambda s: "\0" not in s)
entries = st.builds(
    Entry, path=names, type=st.sampled_from(list("fdlhcbp")), mode=st.integers(0, 0o7777),
    uid=st.integers(0, 2**32 - 1), gid=st.integers(0, 2**32 - 1), uname=text, gname=text,
    mtime_ns=st.integers(-2**62, 2**62), atime_ns=st.none() | st.integers(0, 2**62),
    size=st.integers(0, 2**50), link=text,
    rdev=st.none() | st.tuples(st.integers(0, 4095), st.integers(0, 2**20)),
    xattrs=st.dictionaries(st.text(min_size=1, max_size=20), st.binary(max_size=50), max_size=3),
    sparse=st.none() | st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**30)), max_size=4),
    chunks=refs,
)


@given(st.lists(entries, max_size=8), st.integers(min_value=1, max_value=500))
def test_item_stream_in_any_chunking(es: list[Entry], piece: int) -> None:
    stream = b"".join(items.encode_item({"k": "e", "e": e.to_item()}) for e in es)
    pieces = [stream[i:i + piece] for i in range(0, len(stream), piece)]
    got = [Entry.from_item(i["e"]) for i in items.decode_items(pieces, "s")]
    assert got == es


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=32, max_size=32),
       st.integers(64, 1 << 20).flatmap(lambda a: st.tuples(st.just(a), st.integers(a, 2 << 20))))
def test_config(repo_id: bytes, key: bytes, sizes: tuple[int, int]) -> None:
    lo, hi = sizes
    cfg = config.RepoConfig(repo_id=repo_id, id_key=key,
                            chunker=config.ChunkerParams(lo, lo, hi), created_ns=1)
    if cfg.chunker.in_range():
        assert config.decode(config.encode(cfg)) == cfg
    else:  # section 4.2: FastCDC's ranges
        with pytest.raises(FormatError, match="out of range"):
            config.decode(config.encode(cfg))


@given(st.booleans(), text, st.integers(0, 2**31), st.integers(0, 2**40), text, st.integers(0, 2**62), text)
def test_lock(excl, host, pid, start, boot, t, purpose) -> None:  # type: ignore[no-untyped-def]
    rec = lock.LockRecord(excl, host, pid, start, boot, t, purpose)
    assert lock.decode(lock.encode(rec), "l") == rec


names = st.lists(st.binary(min_size=1, max_size=30).filter(lambda b: b"/" not in b and b"\0" not in b),
                 min_size=1, max_size=4).map(lambda parts: os.fsdecode(b"/".join(parts)))


@given(names, st.sampled_from("fdlhcbp"), u32, u32, u32, st.integers(min_value=-2**63, max_value=2**63 - 1),
       text, text, st.integers(min_value=0, max_value=2**63), st.dictionaries(text, st.binary(max_size=20),
                                                                               max_size=3),
       st.none() | st.lists(st.tuples(u32, u32), max_size=3), refs)
def test_entry_item_without_path(path: str, kind: str, mode: int, uid: int, gid: int, mtime: int, uname: str,
                                 gname: str, size: int, xattrs: dict[str, bytes],
                                 sparse: list[tuple[int, int]] | None, chunks: list[tuple[bytes, int]]) -> None:
    """The files cache keeps an unchanged file's item without its path (its key): put
    back, the bytes are exactly what encode_item gives."""
    encoded = items.encode_item(items.entry_item(items.entry_map(
        path, kind, mode, uid, gid, mtime, uname, gname, None, None, size, "", None, xattrs, sparse, chunks)))
    stripped = items.entry_item_without_path(encoded, path)
    assert stripped is not None and len(stripped) < len(encoded)
    assert items.entry_item_with_path(stripped, path) == encoded


@given(st.binary(max_size=70_000).map(os.fsdecode) | st.sampled_from(
    ["a" * n for n in (0, 31, 32, 255, 256, 65_535, 65_536)] + ["é" * 16, "é" * 128, "x\udcff"]))
@settings(max_examples=300)
def test_packed_name_is_what_msgpack_packs(name: str) -> None:
    """The fast path name packer (an unchanged file's item, issue #14 item 7) gives
    msgpack's bytes exactly, at every length boundary and for names that are not UTF-8."""
    assert items._packed_name(name) == items.pack(items._name_out(name))
