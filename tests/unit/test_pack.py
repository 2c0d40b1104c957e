from __future__ import annotations

import os

import pytest

from repo_format import blob, header, pack
from repo_format.errors import FormatError, IntegrityError
from repo_format.ids import chunk_id, object_name

KEY = bytes(32)


def build(n: int = 5) -> tuple[str, bytes, int, list[bytes]]:
    b = pack.PackBuilder()
    chunks = [os.urandom(100 + i) for i in range(n)]
    for c in chunks:
        b.add(chunk_id(KEY, c), blob.seal(c), len(c))
    name, data, table_len = b.finish()
    return name, data, table_len, chunks


def test_pack_round_trip() -> None:
    name, data, table_len, chunks = build()
    assert name == object_name(data)
    assert data[:4] == b"DDPK"
    entries = pack.parse_pack(data, "p")
    assert [e.chunk_id for e in entries] == [chunk_id(KEY, c) for c in chunks]
    for (e, sealed), c in zip(pack.iter_blobs(data, entries), chunks):
        assert blob.open_blob(sealed, "b") == c and e.raw_len == len(c)
    # the table is readable from the last table_len bytes alone (one ranged read)
    assert pack.decode_table(data[-table_len:], len(data), "p") == entries


def test_pack_name_checked() -> None:
    name, data, _, _ = build()
    pack.check_pack_name(data, name, "p")
    damaged = bytearray(data)
    damaged[20] ^= 1
    with pytest.raises(IntegrityError):
        pack.check_pack_name(bytes(damaged), name, "p")


@pytest.mark.parametrize("cut", [1, 8, 50])
def test_truncated_pack_is_refused(cut: int) -> None:
    _, data, _, _ = build()
    with pytest.raises(FormatError):
        pack.parse_pack(data[:-cut], "p")


def test_table_pointing_outside_is_refused() -> None:
    e = pack.PackEntry(bytes(32), 10_000, 50, 50)
    table = blob.seal(pack.encode_entries([e]))
    data = header.encode_header(header.PACK_MAGIC, 1) + table + pack.TRAILER.pack(len(table), pack.TRAILER_MAGIC)
    with pytest.raises(FormatError, match="outside"):
        pack.parse_pack(data, "p")


def test_empty_pack() -> None:
    name, data, table_len = pack.PackBuilder().finish()
    assert pack.parse_pack(data, "p") == []
