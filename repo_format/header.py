"""The 8-byte header that starts every stored file (FORMAT.md section 1.2)."""

from __future__ import annotations

import struct
from typing import Final

from repo_format.errors import FormatError, UnsupportedVersionError

HEADER_LEN: Final = 8
_HEADER = struct.Struct("<4sBB2s")

# File magics (section 1.2). Retired magics are never reused.
CONFIG_MAGIC: Final = b"DDCF"
PACK_MAGIC: Final = b"DDPK"
INDEX_MAGIC: Final = b"DDIX"
MANIFEST_MAGIC: Final = b"DDMF"
LOCK_MAGIC: Final = b"DDLK"

_KIND_NAMES: Final = {
    CONFIG_MAGIC: "config", PACK_MAGIC: "pack", INDEX_MAGIC: "index segment",
    MANIFEST_MAGIC: "manifest", LOCK_MAGIC: "lock",
}


def encode_header(magic: bytes, version: int) -> bytes:
    return _HEADER.pack(magic, version, 0, b"\0\0")


def decode_header(data: bytes, magic: bytes, supported: tuple[int, ...], what: str) -> int:
    """Check the header of ``data``; return its version.

    ``what`` names the object in error messages (a file name)."""
    kind = _KIND_NAMES.get(magic, "object")
    if len(data) < HEADER_LEN:
        raise FormatError(f"{what}: too short to be a {kind} ({len(data)} bytes)")
    found, version, _flags, _reserved = _HEADER.unpack_from(data)
    if found != magic:
        raise FormatError(f"{what}: not a dedupe {kind} (magic {found!r})")
    if version not in supported:
        if version > max(supported):
            raise UnsupportedVersionError(
                f"{what}: {kind} format version {version} was written by a newer dedupe "
                f"(this one reads {', '.join(map(str, supported))})")
        raise FormatError(f"{what}: unknown {kind} format version {version}")
    return int(version)
