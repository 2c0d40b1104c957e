from __future__ import annotations

import pytest

from repo_format import blob, codecs
from repo_format.errors import FormatError, IntegrityError, UnsupportedVersionError


def test_compressible_data_is_compressed() -> None:
    data = b"abc" * 10000
    sealed = blob.seal(data)
    h = blob.read_header(sealed, "t")
    assert h.codec == codecs.CODEC_ZSTD and h.raw_len == len(data)
    assert len(sealed) < len(data) // 10
    assert blob.open_blob(sealed, "t") == data


def test_incompressible_data_is_stored_raw() -> None:
    import os
    data = os.urandom(4096)
    sealed = blob.seal(data)
    assert blob.read_header(sealed, "t").codec == codecs.CODEC_NONE
    assert sealed[blob.HEADER_LEN:] == data


def test_empty() -> None:
    assert blob.open_blob(blob.seal(b""), "t") == b""


@pytest.mark.parametrize("mutate, error, words", [
    (lambda b: b[:5], FormatError, "truncated"),
    (lambda b: b"XX" + b[2:], FormatError, "not a blob"),
    (lambda b: b[:2] + b"\x09" + b[3:], UnsupportedVersionError, "newer"),
    (lambda b: b[:3] + b"\x07" + b[4:], FormatError, "unknown codec"),
    (lambda b: b[:4] + b"\x09" + b[5:], UnsupportedVersionError, "suite"),
    (lambda b: b[:4] + b"\x01" + b[5:], IntegrityError, "encrypted"),
    (lambda b: b[:8] + (999999).to_bytes(4, "little") + b[12:], FormatError, "decompressed"),
    (lambda b: b[:-3], FormatError, "zstd|decompressed"),
])
def test_damaged_envelopes_are_refused(mutate, error, words) -> None:  # type: ignore[no-untyped-def]
    sealed = blob.seal(b"hello world " * 100)
    with pytest.raises(error, match=words):
        blob.open_blob(mutate(sealed), "t")


def test_decompression_is_bounded_by_raw_length() -> None:
    bomb = blob.seal(b"\0" * (8 << 20))
    # claim a smaller raw length: the decoder must stop, not inflate 8 MiB
    lied = bomb[:8] + (1024).to_bytes(4, "little") + bomb[12:]
    with pytest.raises(FormatError):
        blob.open_blob(lied, "t")
