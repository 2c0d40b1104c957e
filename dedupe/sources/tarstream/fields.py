"""The 512-byte header block: its layout, magics and type flags, and its fields read
(NUL-terminated strings, octal or base-256 numbers, the checksum); ``normalize_path``."""

from __future__ import annotations

import functools
import re
import struct
import zlib
from typing import Final

from dedupe.entries import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SYMLINK
from dedupe.sources.tarstream.errors import BadChecksumError, BadFieldError, NotATarError


BLOCK: Final = 512
MAX_EXTENSION_SIZE: Final = 16 << 20
MAX_HEADER_SIZE: Final = 64 << 20
MAX_PAX_KEYS: Final = 1 << 16  # distinct pax keywords in effect for one member (globals included)
MAX_SPARSE_SEGMENTS: Final = 1 << 18  # segments of one sparse member (about 30 MB as Python tuples)
_MAX_MAP_NUMBER: Final = 20  # digits of one number in a PAX 1.0 sparse map
READ_SIZE: Final = 1 << 20
_DIRECT_READ: Final = 64 << 10  # data reads at least this large bypass the internal buffer
_INT64_MAX: Final = (1 << 63) - 1
_TIME_NS_MIN: Final = -(1 << 63)  # what Entry's msgpack form holds: int64 ... uint64
_TIME_NS_MAX: Final = (1 << 64) - 1
_ZERO_BLOCK: Final = bytes(BLOCK)
_XATTR_PREFIXES: Final = ("SCHILY.xattr.", "LIBARCHIVE.xattr.")
_ACL_BINARY_MAGIC: Final = b"\x02\x00\x00\x00"
_HIGH_BYTES: Final = bytes(range(128, 256))

_TYPE_MAP: Final = {b"0": FILE, b"\0": FILE, b"7": FILE, b"1": HARDLINK, b"2": SYMLINK, b"3": CHARDEV,
                    b"4": BLOCKDEV, b"5": DIR, b"6": FIFO}
_HEADER_ONLY: Final = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})
_PAX_LOCAL: Final = frozenset({b"x", b"X"})
_PAX_GLOBAL: Final = b"g"
_GNU_LONGNAME: Final = b"L"
_GNU_LONGLINK: Final = b"K"
_GNU_SPARSE: Final = b"S"
_EXTENSION_KINDS: Final = {b"x": "pax header", b"X": "pax header", b"g": "pax global header",
                            b"L": "GNU long name header", b"K": "GNU long link header"}
_USTAR_MAGIC: Final = b"ustar\x00"
# A header block's fields (POSIX ustar; GNU reuses the prefix field for times):
# name mode uid gid size mtime chksum typeflag linkname magic+version uname gname devmajor devminor prefix
_FIELDS: Final = struct.Struct("100s8s8s8s12s12s8s1s100s8s32s32s8s8s155s")
_GNU_MAGIC: Final = b"ustar  \x00"

_DECIMAL_RE: Final = re.compile(rb"[0-9]{1,30}\Z")  # 30 digits are beyond every limit, and int() stays cheap
_TIME_RE: Final = re.compile(rb"(-?)([0-9]{1,30})(?:\.([0-9]*))?(?:[eE]([-+]?[0-9]{1,3}))?\Z")
_COMPRESSED_MAGICS: Final = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"),
                             (b"BZh", "bzip2"), (b"\x04\x22\x4d\x18", "lz4"), (b"\x89LZO", "lzop"))


def normalize_path(name: str) -> str:
    """A member name as ``Entry.path``: no leading ``./``, no trailing ``/``; nothing else changes."""
    path = name
    while path.startswith("./"):
        path = path[2:].lstrip("/")
    stripped = path.rstrip("/")
    if stripped:
        path = stripped
    elif path:  # only slashes: the absolute root
        path = "/"
    return path or "."


def _cstr(field: bytes) -> bytes:
    end = field.find(b"\0")
    return field if end < 0 else field[:end]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _number(field: bytes, label: str, where: str, what: str = "") -> int:
    """An octal or base-256 (GNU) numeric header field."""
    value = _field_value(bytes(field))
    if value is None:
        subject = f"{what} at {where}" if what else where
        raise BadFieldError(f"{subject}: {label} field {field!r} is not an octal number")
    return value


@functools.lru_cache(maxsize=1 << 12)
def _field_value(field: bytes) -> int | None:
    """``_number``'s parse, None if the field is not a number. Cached: most members of
    a tree share their mode, owner and group fields, and many their times."""
    first = field[0]
    if first & 0x80:
        value = int.from_bytes(bytes([first & 0x7F]) + field[1:], "big")
        if first & 0x40:
            value -= 1 << (8 * len(field) - 1)
        return value
    end = field.find(b"\0")
    text = (field if end < 0 else field[:end]).strip(b" ")
    if not text:
        return 0
    if not text.isdigit() or b"8" in text or b"9" in text:
        return None
    return int(text, 8)


def _byte_sum(block: bytes) -> int:
    """``sum(block)`` of a header block, faster: Adler-32's first half is one plus the
    byte sum modulo 65521, exact for 256 bytes (at most 65280)."""
    if len(block) != BLOCK:
        return sum(block)
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


def _checksum_matches(block: bytes) -> bool:
    """The common case of ``_check_checksum``: an octal field equal to the unsigned sum."""
    field = block[148:156]
    end = field.find(b"\0")
    text = (field if end < 0 else field[:end]).strip(b" ")
    if not text.isdigit() or b"8" in text or b"9" in text:
        return False
    return int(text, 8) == _byte_sum(block) - sum(field) + 8 * 32


def _check_checksum(block: bytes, offset: int, where: str) -> None:
    field = block[148:156]
    text = _cstr(field).strip(b" ")
    stored = int(text, 8) if text.isdigit() and b"8" not in text and b"9" not in text else None
    unsigned = _byte_sum(block) - sum(field) + 8 * 32
    if stored == unsigned:
        return
    high = len(block) - len(block.translate(None, _HIGH_BYTES))
    high_field = len(field) - len(field.translate(None, _HIGH_BYTES))
    signed = unsigned - 256 * (high - high_field)
    if stored == signed:
        return
    if offset == 0 and block[257:262] != b"ustar":
        raise NotATarError(f"not a tar stream: {_sniff(block)}the first 512-byte block is not a tar header "
                           f"(checksum {field!r} does not match)")
    name = _text(_cstr(block[0:100]))
    shown = f"{stored:#o}" if stored is not None else repr(field)
    raise BadChecksumError(
        f"bad tar header checksum at {where} (name field {name!r}): stored {shown}, computed {unsigned:#o}")


def _sniff(block: bytes) -> str:
    for magic, kind in _COMPRESSED_MAGICS:
        if block.startswith(magic):
            return f"it looks {kind}-compressed (decompress it first); "
    return ""
