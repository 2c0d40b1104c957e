"""The blob envelope: one stored piece of data (FORMAT.md section 5).

Every chunk, every pack table, and the body of every index segment and manifest
is one envelope. The ``seal`` byte says how the payload is protected: 0 is
plaintext; 1 is AES-256-GCM with session keys (section 5.3, ``repo_format.crypto``).
Compression comes first, then encryption.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from repo_format import codecs, crypto
from repo_format.errors import FormatError, IntegrityError, UnsupportedVersionError

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


def seal(data: bytes | memoryview, level: int = codecs.DEFAULT_ZSTD_LEVEL,
         cipher: crypto.BlobCipher | None = None, context: bytes = b"") -> bytes | bytearray:
    """Wrap ``data`` in an envelope, compressed when that helps, and sealed with
    ``cipher`` (bound to ``context``) when the repository is encrypted."""
    _check_size(data)
    return _envelope(len(data), codecs.compress(data, level), cipher, context)


def seal_many(datas: list[bytes | memoryview], contexts: list[bytes], level: int = codecs.DEFAULT_ZSTD_LEVEL,
              cipher: crypto.BlobCipher | None = None) -> list[bytes | bytearray]:
    """``seal`` of each of ``datas`` with the context at the same place in ``contexts``,
    compressed in one call (``codecs.compress_many``)."""
    for data in datas:
        _check_size(data)
    packed = codecs.compress_many(datas, level)
    return [_envelope(len(d), p, cipher, c) for d, p, c in zip(datas, packed, contexts, strict=True)]


def _check_size(data: bytes | memoryview) -> None:
    if len(data) > MAX_RAW_LEN:
        raise ValueError("blob larger than 4 GiB")


def _envelope(raw_len: int, packed: tuple[int, codecs.Payload], cipher: crypto.BlobCipher | None,
              context: bytes) -> bytes | bytearray:
    """The envelope of a payload: its one copy (or encryption) into the stored blob
    (a ``bytearray`` when encrypted, see ``BlobCipher.seal``)."""
    codec, payload = packed
    suite = cipher.suite if cipher is not None else SEAL_NONE
    head = HEADER.pack(MAGIC, VERSION, codec, suite, b"\0\0\0", raw_len)
    if cipher is not None:
        return cipher.seal(payload, head + context, prefix=head)
    return b"".join((head, payload))


def read_header(blob: bytes | memoryview, what: str, cipher: crypto.BlobCipher | None = None) -> EnvelopeHeader:
    if len(blob) < HEADER_LEN:
        raise FormatError(f"{what}: blob truncated ({len(blob)} bytes, header needs {HEADER_LEN})")
    magic, version, codec, seal_id, _reserved, raw_len = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise FormatError(f"{what}: not a blob (magic {bytes(magic)!r})")
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersionError(f"{what}: blob envelope version {version} was written by a newer dedupe")
    expected = cipher.suite if cipher is not None else SEAL_NONE
    if seal_id != expected:
        if seal_id not in crypto.SUITE_NAMES and seal_id != SEAL_NONE:
            raise UnsupportedVersionError(f"{what}: blob sealed with suite {seal_id}, which this dedupe cannot open")
        # a plaintext blob in an encrypted repository (or the reverse) was put there by someone else
        raise IntegrityError(f"{what}: blob is {'not ' if seal_id == SEAL_NONE else ''}encrypted, "
                             f"unlike this repository (tampered with?)")
    return EnvelopeHeader(version, codec, seal_id, raw_len)


def open_blob(blob: bytes | memoryview, what: str, cipher: crypto.BlobCipher | None = None,
              context: bytes = b"") -> bytes:
    """Unwrap an envelope: authenticate and decrypt it when sealed, then decompress
    it, never producing more than the recorded raw length."""
    header = read_header(blob, what, cipher)
    payload = memoryview(blob)[HEADER_LEN:]
    if cipher is None:
        return codecs.decompress(header.codec, payload, header.raw_len, what)
    with cipher.opened(payload, bytes(blob[:HEADER_LEN]) + context, what) as plain:
        return codecs.decompress(header.codec, plain, header.raw_len, what)
