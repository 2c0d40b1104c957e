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


def _batch() -> list[bytes | memoryview]:
    import os
    text = b"line of a log file %d\n"
    return [b"".join(text % i for i in range(n)) for n in (1, 40, 3000)] + [
        os.urandom(5000),  # stored raw
        memoryview(b"x" * 70_000)[10:60_000],  # a view, as the chunk pipeline hands them over
        b"",
        b"ab",  # compression cannot make it smaller
    ]


@pytest.mark.parametrize("level", [0, 1, 3])
def test_compress_many_gives_what_compress_gives_one_by_one(level: int) -> None:
    datas = _batch()
    assert codecs.compress_many(datas, level) == [codecs.compress(d, level) for d in datas]
    nonempty = [d for d in datas if len(d)]  # the one-call path (an empty input takes the other)
    assert codecs.compress_many(nonempty, level) == [codecs.compress(d, level) for d in nonempty]


def test_compress_many_without_the_batch_call_compresses_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """zstandard's cffi backend has no multi_compress_to_buffer: the results stay the same."""
    class OneByOne:
        def __init__(self, real: object) -> None:
            self.compress = real.compress  # type: ignore[attr-defined]

    real = codecs._compressor
    monkeypatch.setattr(codecs, "_compressor", lambda level: OneByOne(real(level)))
    datas = [d for d in _batch() if len(d)]
    assert codecs.compress_many(datas, 3) == [codecs.compress(d, 3) for d in datas]


def test_seal_many_opens_like_seal_with_each_context() -> None:
    from repo_format import crypto
    datas = _batch()
    contexts = [bytes([i]) * 32 for i in range(len(datas))]
    plain = blob.seal_many(datas, contexts)
    assert plain == [blob.seal(d, context=c) for d, c in zip(datas, contexts)]
    cipher = crypto.BlobCipher(b"k" * 32)
    sealed = blob.seal_many(datas, contexts, cipher=cipher)
    for d, c, s in zip(datas, contexts, sealed):
        assert blob.read_header(s, "t", cipher).codec == blob.read_header(blob.seal(d), "t").codec
        assert blob.open_blob(s, "t", cipher, c) == bytes(d)
    with pytest.raises(IntegrityError):
        blob.open_blob(sealed[0], "t", cipher, contexts[1])  # each blob is bound to its own context
    with pytest.raises(ValueError):
        blob.seal_many(datas, contexts[:-1])  # a context for every blob
