"""Packs: many blobs back to back, then their table (FORMAT.md section 6).

    header (8) | blob ... blob | table blob | trailer (8)

The table blob is an envelope whose plaintext is one 44-byte entry per blob
(section 6.2). The trailer holds the table blob's length and a magic, so a
reader that knows the table length (the index records it) fetches table and
trailer with one ranged read from the end.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, Iterator

from repo_format import blob, crypto, header
from repo_format.errors import FormatError, IntegrityError
from repo_format.ids import ID_LEN, object_name, object_name_of_parts

VERSION: Final = 1
SUPPORTED_VERSIONS: Final = (1,)
ENTRY = struct.Struct(f"<{ID_LEN}sIII")
ENTRY_LEN: Final = ENTRY.size  # 44
TRAILER = struct.Struct("<I4s")
TRAILER_LEN: Final = TRAILER.size  # 8
TRAILER_MAGIC: Final = b"DDPT"
MAX_PACK_SIZE: Final = 0xFFFFFFFF
TABLE_CONTEXT: Final = b"pack-table"  # associated data of a sealed table (section 5.3)


@dataclass(frozen=True, slots=True)
class PackEntry:
    """Where one blob sits in its pack."""

    chunk_id: bytes
    offset: int  # from the start of the pack file
    length: int  # stored length of the blob (envelope included)
    raw_len: int  # length of the chunk's plaintext


def encode_entries(entries: list[PackEntry]) -> bytes:
    return b"".join(ENTRY.pack(e.chunk_id, e.offset, e.length, e.raw_len) for e in entries)


def decode_entries(data: bytes | memoryview, what: str) -> list[PackEntry]:
    if len(data) % ENTRY_LEN:
        raise FormatError(f"{what}: pack table length {len(data)} is not a multiple of {ENTRY_LEN}")
    return [PackEntry(bytes(cid), off, ln, raw) for cid, off, ln, raw in ENTRY.iter_unpack(data)]


class PackBuilder:
    """Accumulates blobs into one pack in memory.

    A writer that stores the pack while it is built takes the parts added so far with
    ``take_parts`` (in order, the header first) and the rest with ``close``; it names
    the pack itself (``ids.object_hasher`` over every part in order). ``finish`` and
    ``finish_parts`` name it here, and need every part still held."""

    def __init__(self, cipher: crypto.BlobCipher | None = None) -> None:
        self._cipher = cipher
        self._parts: list[bytes] = [header.encode_header(header.PACK_MAGIC, VERSION)]
        self._size = header.HEADER_LEN
        self._taken = False
        self._table = bytearray()  # the entries, packed as in the table (44 bytes each, section 6.2)

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._table) // ENTRY_LEN

    @property
    def packed_entries(self) -> bytes:
        return bytes(self._table)

    @property
    def entries(self) -> list[PackEntry]:
        return decode_entries(self._table, "pack being built")

    def add(self, chunk_id: bytes, sealed_blob: bytes, raw_len: int) -> None:
        if len(chunk_id) != ID_LEN:
            raise ValueError(f"chunk id of {len(chunk_id)} bytes")
        self._table += ENTRY.pack(chunk_id, self._size, len(sealed_blob), raw_len)
        self._parts.append(sealed_blob)
        self._size += len(sealed_blob)

    def take_parts(self) -> list[bytes]:
        """The parts added since the last call, in order (the header first)."""
        parts, self._parts = self._parts, []
        self._taken = True
        return parts

    def close(self) -> tuple[list[bytes], int]:
        """Close the pack: the parts not yet taken, with the table and the trailer last,
        and ``table_len`` (the table blob and the trailer). ``size`` is then the pack's."""
        table = blob.seal(bytes(self._table), cipher=self._cipher, context=TABLE_CONTEXT)
        trailer = TRAILER.pack(len(table), TRAILER_MAGIC)
        if self._size + len(table) + len(trailer) > MAX_PACK_SIZE:
            raise ValueError("pack larger than 4 GiB")
        self._parts += [table, trailer]
        self._size += len(table) + len(trailer)
        parts, self._parts = self._parts, []
        return parts, len(table) + TRAILER_LEN

    def finish(self) -> tuple[str, bytes, int]:
        """Close the pack. Returns ``(name, bytes, table_len)``; ``table_len``
        counts the table blob and the trailer."""
        name, parts, table_len = self.finish_parts()
        return name, b"".join(parts), table_len

    def finish_parts(self) -> tuple[str, list[bytes], int]:
        """``finish``, with the pack as the list of its parts in order (header, blobs,
        table, trailer) rather than one joined copy, for a writer that can write them
        as they are. The parts' total length is ``size`` after the call."""
        if self._taken:
            raise ValueError("finish_parts after take_parts: the pack is no longer whole here")
        parts, table_len = self.close()
        return object_name_of_parts(parts), parts, table_len


def table_len_from_trailer(trailer: bytes | memoryview, pack_size: int, what: str) -> int:
    """From the last 8 bytes of a pack: the length of table blob + trailer."""
    if len(trailer) != TRAILER_LEN:
        raise FormatError(f"{what}: pack truncated (no trailer)")
    table_len, magic = TRAILER.unpack(trailer)
    if magic != TRAILER_MAGIC:
        raise FormatError(f"{what}: pack trailer damaged (magic {bytes(magic)!r})")
    total = table_len + TRAILER_LEN
    if total > pack_size - header.HEADER_LEN:
        raise FormatError(f"{what}: pack table length {table_len} exceeds the pack size {pack_size}")
    return total


def decode_table(tail: bytes | memoryview, pack_size: int, what: str,
                 cipher: crypto.BlobCipher | None = None) -> list[PackEntry]:
    """Decode the table from the pack's last ``table_len`` bytes (table blob + trailer)."""
    tail = memoryview(tail)
    total = table_len_from_trailer(tail[-TRAILER_LEN:], pack_size, what)
    if total != len(tail):
        raise FormatError(f"{what}: pack table length mismatch ({len(tail)} bytes read, trailer says {total})")
    entries = decode_entries(blob.open_blob(tail[:-TRAILER_LEN], f"{what} table", cipher, TABLE_CONTEXT), what)
    table_start = pack_size - total
    for e in entries:
        if e.offset < header.HEADER_LEN or e.offset + e.length > table_start:
            raise FormatError(f"{what}: table entry for chunk {e.chunk_id.hex()[:16]} points outside the pack")
    return entries


def parse_pack(data: bytes | memoryview, what: str, cipher: crypto.BlobCipher | None = None) -> list[PackEntry]:
    """Check a whole pack's header, name-independent structure and table."""
    header.decode_header(data, header.PACK_MAGIC, SUPPORTED_VERSIONS, what)
    total = table_len_from_trailer(data[-TRAILER_LEN:], len(data), what)
    return decode_table(memoryview(data)[len(data) - total:], len(data), what, cipher)


def check_pack_name(data: bytes | memoryview, name: str, what: str, actual: str | None = None) -> None:
    """The pack's content hash must be its name (``actual``: that hash, when taken already)."""
    actual = object_name(data) if actual is None else actual
    if actual != name:
        raise IntegrityError(f"{what}: content hash {actual[:16]}... does not match its name")


def iter_blobs(data: bytes | memoryview, entries: list[PackEntry]) -> Iterator[tuple[PackEntry, memoryview]]:
    view = memoryview(data)
    for e in entries:
        yield e, view[e.offset:e.offset + e.length]
