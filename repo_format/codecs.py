"""Compression codecs of the blob envelope (FORMAT.md section 5.2).

Codec ids are never reused once retired.
"""

from __future__ import annotations

import threading
from typing import Any, Final

import zstandard

from repo_format.errors import FormatError

CODEC_NONE: Final = 0
CODEC_ZSTD: Final = 1
DEFAULT_ZSTD_LEVEL: Final = 3
MAX_ZSTD_LEVEL: Final = 22

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] = getattr(_local, "compressors", None) or {}
    _local.compressors = cache
    if level not in cache:
        # write_content_size lets the decoder check the frame against the envelope's raw length
        cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False)
    return cache[level]


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = zstandard.ZstdDecompressor()
    return d


Payload = bytes | memoryview


def compress(data: bytes | memoryview, level: int = DEFAULT_ZSTD_LEVEL) -> tuple[int, Payload]:
    """Compress with zstd; keep the data raw when that is not smaller.

    ``level`` 0 means no compression. Returns ``(codec, payload)``: the payload is
    ``data`` itself when kept raw, to be copied once into the envelope."""
    if level <= 0 or len(data) == 0:
        return CODEC_NONE, data
    return _smaller(data, _compressor(level).compress(data))


def compress_many(datas: list[bytes | memoryview], level: int = DEFAULT_ZSTD_LEVEL) -> list[tuple[int, Payload]]:
    """``compress`` of each of ``datas`` (the same results), in one call into zstd.

    A thread compressing small chunks one at a time gives up the GIL around each and
    then waits to get it back behind the threads that took it; one call for a whole
    batch of chunks waits once."""
    if level <= 0 or len(datas) < 2 or not all(len(d) for d in datas):
        return [compress(d, level) for d in datas]
    try:
        packed = _compressor(level).multi_compress_to_buffer(datas, threads=1)
    except (AttributeError, NotImplementedError):  # a zstandard backend without it (cffi)
        return [compress(d, level) for d in datas]
    return [_smaller(d, p) for d, p in zip(datas, packed)]


def _smaller(data: bytes | memoryview, packed: Any) -> tuple[int, Payload]:
    """``(codec, payload)``: ``packed`` (bytes, or a zstandard buffer segment, given as
    a view of it) unless it is not smaller than ``data``."""
    if len(packed) >= len(data):
        return CODEC_NONE, data
    return CODEC_ZSTD, packed if isinstance(packed, bytes) else memoryview(packed)


def decompress(codec: int, payload: bytes | memoryview, raw_len: int, what: str) -> bytes:
    """Decompress ``payload``, never producing more than ``raw_len`` bytes."""
    if codec == CODEC_NONE:
        out = bytes(payload)
    elif codec == CODEC_ZSTD:
        try:
            out = _decompressor().decompress(payload, max_output_size=raw_len)
        except zstandard.ZstdError as e:
            raise FormatError(f"{what}: zstd data is corrupt ({e})") from None
    else:
        raise FormatError(f"{what}: unknown codec {codec}")
    if len(out) != raw_len:
        raise FormatError(f"{what}: decompressed to {len(out)} bytes, envelope says {raw_len}")
    return out
