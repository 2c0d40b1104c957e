"""The blob envelope: one stored piece of data (FORMAT.md section 5).

Every chunk, every pack table, and the body of every index segment and manifest
is one envelope. The ``seal`` byte leaves room for authenticated encryption: 0 is
plaintext; other values are reserved for AEAD suites (section 5.3) and refused
by this version.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from repo_format import codecs
from repo_format.errors import FormatError, UnsupportedVersionError

MAGIC: Final = b"\xdd\xb1"
VERSION: Final = 1
SUPPORTED_VERSIONS: Final = (1,)
SEAL_NONE: Final = 0
HEADER = struct.Struct("<2sBBB3sI")
HEADER_LEN: Final = HEADER.size  # 12
MAX_RAW_LEN: Final = 0xFFFFFFFF


@dataclass(frozen=True)
class EnvelopeHeader:
    version: int
    codec: int
    seal: int
    raw_len: int


def seal(data: bytes | memoryview, level: int = codecs.DEFAULT_ZSTD_LEVEL) -> bytes:
    """Wrap ``data`` in an envelope, compressed when that helps."""
    if len(data) > MAX_RAW_LEN:
        raise ValueError("blob larger than 4 GiB")
    codec, payload = codecs.compress(data, level)
    return HEADER.pack(MAGIC, VERSION, codec, SEAL_NONE, b"\0\0\0", len(data)) + payload


def read_header(blob: bytes | memoryview, what: str) -> EnvelopeHeader:
    if len(blob) < HEADER_LEN:
        raise FormatError(f"{what}: blob truncated ({len(blob)} bytes, header needs {HEADER_LEN})")
    magic, version, codec, seal_id, _reserved, raw_len = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise FormatError(f"{what}: not a blob (magic {bytes(magic)!r})")
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersionError(f"{what}: blob envelope version {version} was written by a newer dedupe")
    if seal_id != SEAL_NONE:
        raise UnsupportedVersionError(f"{what}: blob sealed with suite {seal_id}, which this dedupe cannot open")
    return EnvelopeHeader(version, codec, seal_id, raw_len)


def open_blob(blob: bytes | memoryview, what: str) -> bytes:
    """Unwrap an envelope, checking the header and the decompressed length."""
    header = read_header(blob, what)
    return codecs.decompress(header.codec, memoryview(blob)[HEADER_LEN:], header.raw_len, what)
