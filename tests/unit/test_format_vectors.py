"""The worked examples of FORMAT.md section 14, read from the spec itself."""

from __future__ import annotations

import re
from pathlib import Path

import blake3

from dedupe.backup.chunking import cut_blocks, make_chunker
from repo_format import blob, codecs, config, crypto, ids

SPEC = (Path(__file__).parents[2] / "repo_format" / "FORMAT.md").read_text()


def section(title: str) -> str:
    start = SPEC.index(title)
    nxt = SPEC.find("\n### ", start + 1)
    return SPEC[start:nxt if nxt != -1 else None]


def test_blob_envelope_vector() -> None:
    text = section("### 14.1")
    hexbytes = re.search(r"`(dd b1 [0-9a-f ]+)`", text).group(1).replace(" ", "")
    assert blob.seal(b"hello", level=0).hex() == hexbytes
    assert blob.open_blob(bytes.fromhex(hexbytes), "vector") == b"hello"


def test_chunk_id_vector() -> None:
    want = re.search(r"chunk id = `([0-9a-f]{64})`", section("### 14.2")).group(1)
    assert ids.chunk_id(bytes(range(32)), b"hello").hex() == want


def test_chunk_boundary_vector() -> None:
    text = section("### 14.4")
    lengths = [int(x) for x in re.search(r"```\n([\d\s]+)```", text).group(1).split()]
    data = blake3.blake3(b"dedupe golden").digest(length=32 << 20)
    chunker = make_chunker(config.DEFAULT_CHUNKER)
    assert config.DEFAULT_CHUNKER.to_list() == [262144, 1048576, 4194304, 1, 0]
    assert [c.length for c in chunker.cut_buf(data)] == lengths
    # fed in pieces of an odd size, the cut points do not move
    pieces = [data[i:i + 999_983] for i in range(0, len(data), 999_983)]
    assert [len(c) for c in cut_blocks(chunker, pieces)] == lengths


def test_sealed_blob_vector() -> None:
    text = section("### 14.3")
    want = "".join(re.findall(r"`([0-9a-f]+)`", text)[-5:])
    cipher = crypto.BlobCipher(bytes(range(32)), session_id=b"\xaa" * 16)
    cid = ids.chunk_id(bytes(range(32)), b"hello")
    assert blob.seal(b"hello", 0, cipher, cid).hex() == want
    reader = crypto.BlobCipher(bytes(range(32)))  # another session opens it
    assert blob.open_blob(bytes.fromhex(want), "vector", reader, cid) == b"hello"


def test_codec_ids_are_stable() -> None:
    assert (codecs.CODEC_NONE, codecs.CODEC_ZSTD) == (0, 1)
