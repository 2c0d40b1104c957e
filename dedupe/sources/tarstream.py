"""A streaming, byte-faithful tar parser: members, their raw header bytes, their data.

The tar source reads an archive (an LXD export, GNU tar or Python ``tarfile`` output)
member by member without holding it in memory, chunks each member's data on its own,
and keeps every raw header byte, so that concatenating, for each member,
``header + data + padding`` and then the tail gives back the original stream byte
for byte.

API::

    reader = TarReader(stream)             # anything with .read(n) -> bytes
    for member in reader:                  # TarMember, in stream order
        member.header                      # every raw byte before the data (see TarMember)
        member.entry                       # dedupe.entries.Entry, chunks left empty
        for block in member.iter_raw():    # the member's data_size archive bytes
            ...
        member.padding                     # raw bytes up to the next 512 boundary
    for block in reader.iter_tail():       # end-of-archive blocks and whatever follows
        ...
    reader.offset                          # bytes consumed so far

A member's data must be read with ``iter_raw`` before the next member is requested;
if it was not read (or only partly), it is skipped when the next member is requested,
and an ``iter_raw`` iterator left behind raises ``RuntimeError`` if resumed.
``padding`` is known once the data has been read or skipped (at once when the member
has no data). For a PAX 1.0 sparse member ``iter_raw`` yields the map blocks first
(``data_prefix`` bytes), then the content; ``content_size`` is what follows the map.
``iter_tail`` may only be called once the member iteration has ended.

What is understood: ustar, GNU (long names and links ``L``/``K``, old GNU sparse
``S`` members with their extension blocks, atime/ctime of incremental archives),
V7, PAX (``x``, ``g`` and Solaris ``X`` headers: path, linkpath, size, uid, gid,
uname, gname, mtime/atime/ctime with fractions as nanoseconds, ``SCHILY.xattr.*``,
``LIBARCHIVE.xattr.*``, ``SCHILY.acl.access``/``SCHILY.acl.default`` as text or as the
kernel's binary value, ``GNU.sparse.*`` of sparse formats 0.0, 0.1 and 1.0) and
base-256 numeric fields. Types: regular (``0``, NUL, ``7``), hardlink ``1``,
symlink ``2``, char ``3``, block ``4``, directory ``5``, fifo ``6``; a NUL type whose
name ends in ``/`` is a (V7) directory; any other type is a regular file, as POSIX
asks (``TarMember.typeflag`` keeps the raw type). Types ``1``-``6`` never carry data,
whatever their size field says (as Go's archive/tar and Python's tarfile read them).

Where the members end: the first all-zero 512-byte block ends the members, and the
tail is that block and everything after it (the second zero block, blocking-factor
padding, trailing data of any length). Global pax headers (``g``) with no member after
them belong to the tail too. A stream that ends at a header boundary without zero
blocks has an empty tail; a stream that is empty or only zeros has no members.

Names: ``Entry.path`` drops leading ``./`` and trailing ``/`` (the archive root
``./`` becomes ``.``) but keeps ``..`` components and absolute names as they are:
refusing them is the restore sink's job, and a hostile archive must still back up
faithfully. Hardlink targets are normalised the same way (they name a member);
symlink targets are kept verbatim. Names that are not UTF-8 are decoded with
``surrogateescape``.

Pax values: the last record of a keyword wins, local (``x``) over global (``g``); an
empty value deletes the keyword (POSIX), except for xattrs, where it is an empty value.
Times are decimal seconds with any number of fraction digits (truncated to ns; an
exponent, which Python's tarfile may write, is accepted).

Xattrs and ACLs: ``SCHILY.xattr.NAME`` holds the raw value (``LIBARCHIVE.xattr.*``,
URL-encoded name and base64 value, is read when SCHILY has no value for the name).
POSIX ACLs are ``system.posix_acl_access`` / ``system.posix_acl_default``: GNU tar
1.34 writes them both as ``SCHILY.xattr.system.posix_acl_*`` (binary, used as is) and
as ``SCHILY.acl.*`` text; the text is only converted (with ``dedupe.acl``, which looks
names up on this host) when the binary value is absent. LXD writes binary values in
``SCHILY.acl.*``: kept as they are. A minimal access ACL (just the mode bits, which
GNU tar writes for every member) is dropped: the kernel does not store one.

Sparse members: ``Entry.sparse`` lists the data segments (zero-length markers left
out), checked to be ordered, inside ``Entry.size`` (the apparent size) and to add up
to the stored content.

Limits (memory stays bounded whatever the input claims): one pax header, GNU long
name or link block may hold at most ``MAX_EXTENSION_SIZE`` bytes (16 MiB); all header
bytes of one member together at most ``MAX_HEADER_SIZE``; ``MAX_PAX_KEYS`` distinct
pax keywords; ``MAX_SPARSE_SEGMENTS`` segments per sparse member. Sizes, ids and
device numbers must fit in a signed 64-bit integer, times in nanoseconds between
-2**63 and 2**64 - 1 (what Entry's msgpack form holds).

Every problem with the input raises a ``TarStreamError`` subclass naming the member
and the byte offset; ``OSError`` from the stream itself is not wrapped (the caller
knows which file it is).
"""

from __future__ import annotations

import base64
import functools
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import unquote_to_bytes

from dedupe import acl
from dedupe.entries import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry
from dedupe.errors import DedupeError

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


class TarStreamError(DedupeError):
    """The tar input cannot be parsed (the base of this module's errors)."""

    exit_code = 40


class NotATarError(TarStreamError):
    """The input does not start with a tar header."""

    exit_code = 40


class BadChecksumError(TarStreamError):
    """A header block's checksum does not match its bytes."""

    exit_code = 41


class BadFieldError(TarStreamError):
    """A numeric header field or pax value is not a number or out of range."""

    exit_code = 42


class ImpossibleSizeError(TarStreamError):
    """A member's size is negative or beyond what any stream can hold."""

    exit_code = 43


class TruncatedTarError(TarStreamError):
    """The stream ends inside a header or inside a member's data."""

    exit_code = 44


class BadPaxRecordError(TarStreamError):
    """A pax extended header holds a malformed record or value."""

    exit_code = 45


class BadSparseMapError(TarStreamError):
    """A sparse member's map is malformed or disagrees with its data size."""

    exit_code = 46


class ExtensionTooLargeError(TarStreamError):
    """A pax header, GNU long name/link or sparse map exceeds the memory limit."""

    exit_code = 47


class DanglingExtensionError(TarStreamError):
    """An extended header (pax ``x``, GNU ``L``/``K``) has no member after it."""

    exit_code = 48


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


@dataclass(eq=False)
class TarMember:
    """One member of the archive.

    ``header``: all raw bytes before the member's data: pax ``x`` and ``g`` headers
    with their data blocks, GNU ``L``/``K`` blocks, old GNU sparse extension blocks and
    the member's own 512-byte header. ``data_size``: the archive data bytes after the
    header (the stored size; for sparse members the packed size, including a PAX 1.0
    map). ``data_prefix``: bytes at the start of the data that are not file content
    (the PAX 1.0 sparse map blocks), else 0. ``padding``: the raw bytes from the end of
    the data to the next 512 boundary, available once the data has been read or
    skipped. ``typeflag``: the raw type byte. ``offset``: where ``header`` starts in
    the stream.
    """

    header: bytes
    entry: Entry
    data_size: int
    data_prefix: int
    typeflag: bytes
    offset: int
    _reader: TarReader | None = field(default=None, repr=False)
    _padding: bytes | None = field(default=None, repr=False)

    @property
    def padding(self) -> bytes:
        if self._padding is None:
            raise RuntimeError(f"padding of member {self.entry.path!r} is not read yet: read its data first")
        return self._padding

    @property
    def content_size(self) -> int:
        """Bytes of file content in the data (``data_size - data_prefix``)."""
        return self.data_size - self.data_prefix

    def iter_raw(self, block_size: int = READ_SIZE) -> Iterator[bytes]:
        """The ``data_size`` archive bytes, streamed in pieces of at most ``block_size``."""
        if self._reader is None:
            raise RuntimeError(f"data of member {self.entry.path!r} was already read or skipped")
        return self._reader._iter_data(self, block_size)

    def cut_views(self, consume: Callable[[memoryview, bool], int]) -> None:
        """The data as views of at most the reader's ``view_size`` bytes, without copies
        but at view boundaries: ``consume(view, last)`` returns how many bytes at the end
        of ``view`` it did not use (when ``last`` is false), and the next view starts
        with them again (a chunker's uncut tail). Needs a reader with ``view_size``
        larger than what ``consume`` leaves over, and ``data_prefix`` 0."""
        if self._reader is None:
            raise RuntimeError(f"data of member {self.entry.path!r} was already read or skipped")
        self._reader._cut_views(self, consume)

    def read_view(self) -> memoryview:
        """All ``data_size`` archive bytes as one memoryview, when the reader was made
        with a ``view_size`` of at least ``data_size`` and the member has no prefetched
        sparse map (``data_prefix`` 0); else use ``iter_raw``."""
        if self._reader is None:
            raise RuntimeError(f"data of member {self.entry.path!r} was already read or skipped")
        return self._reader._data_view(self)


class _Input:
    """The stream with a small read-ahead buffer and a byte count.

    With ``view_size`` (the backup path), the stream is read into reused buffers of
    that size: ``read_some`` then returns memoryviews into them (valid for as long as
    the caller keeps them; a buffer is reused only once no view of it is left) and
    ``read_view`` gives up to ``view_size`` contiguous bytes without a copy."""

    def __init__(self, stream: Readable, view_size: int = 0) -> None:
        self._stream = stream
        self._buf: bytes | memoryview = b""
        self._pos = 0
        self.offset = 0
        self.view_size = view_size
        self._pool: Any = None
        if view_size:
            from dedupe.buffers import BufferPool, ReadInto
            self._pool = BufferPool(view_size)
            self._readinto = ReadInto(stream)

    def _refill(self, need: int) -> None:
        """A fresh buffer holding what is left of the current one, then read until it
        holds ``need`` bytes (or the stream ends)."""
        left = self._buf[self._pos:]
        view = memoryview(self._pool.get())
        kept = len(left)
        view[:kept] = left
        del left
        filled = kept
        while filled < need:
            n = self._readinto(view[filled:])
            if not n:
                break
            filled += n
        self._buf = view[:filled]
        view.release()
        self._pos = 0

    def read_some(self, n: int) -> bytes:
        """Between 1 and ``n`` bytes; ``b""`` only at the end of the stream."""
        avail = len(self._buf) - self._pos
        if avail:
            take = min(avail, n)
            piece = self._buf[self._pos:self._pos + take]
            self._pos += take
        elif self._pool is not None:
            self._refill(1)
            take = min(len(self._buf), n)
            piece = self._buf[:take]
            self._pos = take
        elif n >= _DIRECT_READ:
            piece = self._stream.read(n)
        else:
            self._buf = self._stream.read(READ_SIZE)
            self._pos = 0
            piece = self._buf[:n]
            self._pos = len(piece)
        self.offset += len(piece)
        return piece  # type: ignore[return-value]  # a memoryview with view_size

    def read_view(self, n: int) -> memoryview:
        """``n`` contiguous bytes (``n`` at most ``view_size``), fewer only if the stream ends."""
        if len(self._buf) - self._pos < n:
            self._refill(self.view_size)
        piece = self._buf[self._pos:self._pos + n]
        self._pos += len(piece)
        self.offset += len(piece)
        return piece  # type: ignore[return-value]

    def unread(self, n: int) -> None:
        """Step back over the last ``n`` bytes of the view just read (they are still in
        the current buffer): the next ``read_view`` starts with them."""
        assert 0 <= n <= self._pos
        self._pos -= n
        self.offset -= n

    def read_upto(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer if the stream ends first."""
        pos = self._pos
        if self._pool is not None and len(self._buf) - pos >= n:  # the common case: in the buffer
            self._pos = pos + n
            self.offset += n
            return bytes(self._buf[pos:pos + n])
        first = self.read_some(n)
        if len(first) == n or not first:
            return bytes(first) if self._pool is not None else first
        parts = [first]
        got = len(first)
        while got < n:
            piece = self.read_some(n - got)
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)


class _Pending:
    """Extension headers read so far for the next member."""

    __slots__ = ("longlink", "longname", "offset", "only_global", "parts", "records", "size",
                 "sparse_numbytes", "sparse_offsets")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.parts: list[bytes] = []
        self.size = 0
        self.records: dict[str, bytes] = {}
        self.sparse_offsets: list[bytes] = []
        self.sparse_numbytes: list[bytes] = []
        self.longname: bytes | None = None
        self.longlink: bytes | None = None
        self.only_global = True

    def add(self, raw: bytes) -> None:
        self.parts.append(raw)
        self.size += len(raw)
        if self.size > MAX_HEADER_SIZE:
            raise ExtensionTooLargeError(
                f"headers of one member starting at byte offset {self.offset} exceed {MAX_HEADER_SIZE} bytes")


class TarReader:
    """Reads a tar stream member by member (see the module docstring)."""

    def __init__(self, stream: Readable, view_size: int = 0) -> None:
        """``view_size``: read into reused buffers of this size, data blocks are then
        memoryviews, and ``TarMember.read_view`` is available (see ``_Input``)."""
        self._in = _Input(stream, view_size)
        self._globals: dict[str, bytes] = {}
        self._current: TarMember | None = None
        self._remaining = 0  # data bytes of the current member not yet read
        self._prefetched = b""  # data bytes of the current member read ahead (PAX 1.0 map)
        self._done = False
        self._tail_head = b""
        self._last_name: str | None = None
        self._failed = False  # an error was raised: the position in the stream is unknown

    @property
    def offset(self) -> int:
        """Bytes consumed from the stream so far."""
        return self._in.offset

    def __iter__(self) -> Iterator[TarMember]:
        while not self._done:
            self._check_usable()
            try:
                self._finish_current()
                member = self._next_member()
            except TarStreamError:
                self._failed = True
                raise
            if member is None:
                self._done = True
                return
            yield member

    def iter_tail(self, block_size: int = READ_SIZE) -> Iterator[bytes]:
        """After the members: the end-of-archive blocks and all that follows, as is."""
        self._check_usable()
        if not self._done:
            raise RuntimeError("iter_tail() called before all members were read")
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        return self._tail(block_size)

    def _check_usable(self) -> None:
        if self._failed:
            raise RuntimeError("this TarReader raised an error before and cannot go on")

    def _tail(self, block_size: int) -> Iterator[bytes]:
        if self._tail_head:
            head, self._tail_head = self._tail_head, b""
            for start in range(0, len(head), block_size):
                yield head[start:start + block_size]
        while True:
            piece = self._in.read_some(block_size)
            if not piece:
                return
            yield piece

    # -- data of the current member

    def _iter_data(self, member: TarMember, block_size: int) -> Iterator[bytes]:
        if member is not self._current or member._reader is None:
            raise RuntimeError(f"data of member {member.entry.path!r} was already read or skipped")
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        member._reader = None
        return self._data_blocks(member, block_size)

    def _data_view(self, member: TarMember) -> memoryview:
        self._check_current(member)
        if self._prefetched or self._remaining > self._in.view_size:
            raise RuntimeError(f"data of member {member.entry.path!r} does not fit one view: use iter_raw")
        member._reader = None
        try:
            view = self._in.read_view(self._remaining)
            self._remaining -= len(view)
            if self._remaining:
                self._truncated_data(member)
            self._read_padding(member)
        except TarStreamError:
            self._failed = True
            raise
        return view

    def _cut_views(self, member: TarMember, consume: Callable[[memoryview, bool], int]) -> None:
        self._check_current(member)
        if self._prefetched or not self._in.view_size:
            raise RuntimeError(f"data of member {member.entry.path!r}: cut_views needs a view_size and no sparse map")
        member._reader = None
        size = self._in.view_size
        carry = 0
        try:
            while True:
                self._in.unread(carry)
                want = min(size, carry + self._remaining)
                view = self._in.read_view(want)
                self._remaining -= len(view) - carry
                if len(view) < want:
                    self._truncated_data(member)
                last = not self._remaining
                carry = consume(view, last)
                del view
                if last:
                    break
                if not 0 <= carry < size:
                    raise RuntimeError(f"cut_views: {carry} bytes left over of a view of at most {size}")
                self._check_current(member)
            self._read_padding(member)
        except TarStreamError:
            self._failed = True
            raise

    def _data_blocks(self, member: TarMember, block_size: int) -> Iterator[bytes]:
        self._check_current(member)
        while self._prefetched:
            piece = self._prefetched[:block_size]
            self._prefetched = self._prefetched[block_size:]
            yield piece
            self._check_current(member)
        try:
            while self._remaining:
                piece = self._in.read_some(min(block_size, self._remaining))
                if not piece:
                    self._truncated_data(member)
                self._remaining -= len(piece)
                yield piece
                self._check_current(member)
            if member._padding is None:
                self._read_padding(member)
        except TarStreamError:
            self._failed = True
            raise

    def _check_current(self, member: TarMember) -> None:
        self._check_usable()
        if member is not self._current:
            raise RuntimeError(f"data of member {member.entry.path!r} read after the next member was requested")

    def _finish_current(self) -> None:
        member = self._current
        if member is None:
            return
        member._reader = None
        self._prefetched = b""
        while self._remaining:
            piece = self._in.read_some(min(READ_SIZE, self._remaining))
            if not piece:
                self._truncated_data(member)
            self._remaining -= len(piece)
        if member._padding is None:
            self._read_padding(member)
        self._current = None

    def _read_padding(self, member: TarMember) -> None:
        want = -member.data_size % BLOCK
        padding = self._in.read_upto(want)
        if len(padding) != want:
            raise TruncatedTarError(
                f"member {member.entry.path!r} (header at byte offset {member.offset}): stream ends inside "
                f"the padding after its data, at byte offset {self._in.offset}")
        member._padding = padding
        self._current = None

    def _truncated_data(self, member: TarMember) -> None:
        got = member.data_size - self._remaining
        raise TruncatedTarError(
            f"member {member.entry.path!r} (header at byte offset {member.offset}) claims {member.data_size} "
            f"bytes, stream ends after {got} (at byte offset {self._in.offset})")

    # -- headers

    def _where(self, offset: int) -> str:
        after = f", after member {self._last_name!r}" if self._last_name is not None else ""
        return f"byte offset {offset}{after}"

    def _next_member(self) -> TarMember | None:
        pending = _Pending(offset=self._in.offset)
        while True:
            block_offset = self._in.offset
            block = self._in.read_upto(BLOCK)
            if len(block) < BLOCK or block == _ZERO_BLOCK:
                if block and block.count(0) != len(block):
                    self._short_header(block, block_offset)
                self._end_of_members(pending, block)
                return None
            if not _checksum_matches(block):
                _check_checksum(block, block_offset, self._where(block_offset))
            typeflag = block[156:157]
            if typeflag in _PAX_LOCAL or typeflag == _PAX_GLOBAL:
                self._read_pax(block, block_offset, typeflag, pending)
            elif typeflag == _GNU_LONGNAME or typeflag == _GNU_LONGLINK:
                data = self._read_extension(block, block_offset, pending)
                name = data.split(b"\0", 1)[0]
                if typeflag == _GNU_LONGNAME:
                    pending.longname = name
                else:
                    pending.longlink = name
                pending.only_global = False
            else:
                return self._member(block, block_offset, typeflag, pending)

    def _short_header(self, block: bytes, offset: int) -> None:
        if offset == 0 and block[257:262] != b"ustar":
            raise NotATarError(f"not a tar stream: {_sniff(block)}{len(block)} bytes, less than one 512-byte header")
        raise TruncatedTarError(
            f"truncated tar header at {self._where(offset)}: stream ends after {len(block)} of {BLOCK} bytes")

    def _end_of_members(self, pending: _Pending, block: bytes) -> None:
        if pending.parts and not pending.only_global:
            what = "stream ends" if not block else "end-of-archive block follows"
            raise DanglingExtensionError(
                f"extended header at byte offset {pending.offset} has no member after it ({what} "
                f"at byte offset {pending.offset + pending.size})")
        self._tail_head = b"".join(pending.parts) + block

    def _read_extension(self, block: bytes, offset: int, pending: _Pending) -> bytes:
        """Read the data of a pax or GNU long name/link header; return it without padding."""
        where = self._where(offset)
        kind = _EXTENSION_KINDS[block[156:157]]
        size = _number(block[124:136], "size", where, kind)
        if size < 0:
            raise ImpossibleSizeError(f"{kind} at {where} has negative size {size}")
        if size > MAX_EXTENSION_SIZE:
            raise ExtensionTooLargeError(
                f"{kind} at {where} claims {size} bytes, more than the limit of {MAX_EXTENSION_SIZE}")
        stored = size + (-size % BLOCK)
        raw = self._in.read_upto(stored)
        if len(raw) < stored:
            what = "data" if len(raw) < size else "padding"
            raise TruncatedTarError(
                f"{kind} at {where} claims {size} bytes, stream ends after {min(len(raw), size)} "
                f"(inside its {what})")
        pending.add(block)
        pending.add(raw)
        return raw[:size]

    def _read_pax(self, block: bytes, offset: int, typeflag: bytes, pending: _Pending) -> None:
        data = self._read_extension(block, offset, pending)
        where = self._where(offset)
        records = _iter_pax(data, where)
        if typeflag == _PAX_GLOBAL:
            for key, value in records:
                if _deletes(key, value):
                    self._globals.pop(key, None)
                else:
                    self._globals[key] = value
                    _check_keys(self._globals, where)
            return
        pending.only_global = False
        for key, value in records:
            if key == "GNU.sparse.offset" or key == "GNU.sparse.numbytes":
                values = pending.sparse_offsets if key == "GNU.sparse.offset" else pending.sparse_numbytes
                values.append(value)
                if len(values) > MAX_SPARSE_SEGMENTS:
                    raise ExtensionTooLargeError(
                        f"pax header at {where} holds more than {MAX_SPARSE_SEGMENTS} {key} records")
            else:
                pending.records[key] = value
                _check_keys(pending.records, where)

    def _pax_in_force(self, pending: _Pending) -> dict[str, bytes]:
        """The global pax records overridden by the member's own (an empty value deletes)."""
        if not self._globals and not pending.records:
            return {}
        pax = dict(self._globals)
        for key, value in pending.records.items():
            if _deletes(key, value):
                pax.pop(key, None)
            else:
                pax[key] = value
        return pax

    def _member(self, block: bytes, offset: int, typeflag: bytes, pending: _Pending) -> TarMember:
        pending.add(block)
        (name_field, mode_field, uid_field, gid_field, size_field, mtime_field, _checksum, _type,
         link_field, magic, uname_field, gname_field, major_field, minor_field, prefix_field) = _FIELDS.unpack_from(block)
        is_ustar = magic[:6] == _USTAR_MAGIC  # POSIX ustar: name prefix field
        is_gnu = magic == _GNU_MAGIC  # GNU: atime/ctime where ustar has the prefix
        has_owner = magic[:5] == b"ustar"  # both: uname, gname, device numbers

        pax = self._pax_in_force(pending)

        raw_name = _cstr(name_field)
        if is_ustar:
            prefix = _cstr(prefix_field)
            if prefix:
                raw_name = prefix + b"/" + raw_name
        if pending.longname is not None:
            raw_name = pending.longname
        name = _text(pax["path"]) if "path" in pax else _text(raw_name)
        if "GNU.sparse.name" in pax:
            name = _text(pax["GNU.sparse.name"])
        where_m = f"member {name!r} at byte offset {offset}"

        etype = _TYPE_MAP.get(typeflag, FILE)
        if typeflag == b"\0" and name.endswith("/"):
            etype = DIR
        if typeflag == _GNU_SPARSE:
            etype = FILE

        raw_link = pending.longlink if pending.longlink is not None else _cstr(link_field)
        link = _text(pax["linkpath"]) if "linkpath" in pax else _text(raw_link)

        mode = _number(mode_field, "mode", where_m)
        if mode < 0:
            raise BadFieldError(f"{where_m}: negative mode {mode}")
        mode &= 0o7777
        uid = _pax_or_field(pax, "uid", uid_field, where_m)
        gid = _pax_or_field(pax, "gid", gid_field, where_m)
        if "mtime" in pax:
            mtime_ns = _pax_time(pax["mtime"], "mtime", where_m)
        else:
            mtime_ns = _number(mtime_field, "mtime", where_m) * 1_000_000_000
        atime_ns = _pax_time(pax["atime"], "atime", where_m) if "atime" in pax else None
        ctime_ns = _pax_time(pax["ctime"], "ctime", where_m) if "ctime" in pax else None
        if is_gnu:
            if atime_ns is None and block[345:357].strip(b"\0"):
                atime_ns = _number(block[345:357], "atime", where_m) * 1_000_000_000
            if ctime_ns is None and block[357:369].strip(b"\0"):
                ctime_ns = _number(block[357:369], "ctime", where_m) * 1_000_000_000
        if not _TIME_NS_MIN <= mtime_ns <= _TIME_NS_MAX or atime_ns is not None or ctime_ns is not None:
            for label, stamp in (("mtime", mtime_ns), ("atime", atime_ns), ("ctime", ctime_ns)):
                if stamp is not None and not _TIME_NS_MIN <= stamp <= _TIME_NS_MAX:
                    raise BadFieldError(f"{where_m}: {label} {stamp} ns is out of range (years 1677 to 2554)")
        uname = _text(pax["uname"]) if "uname" in pax else _text(_cstr(uname_field)) if has_owner else ""
        gname = _text(pax["gname"]) if "gname" in pax else _text(_cstr(gname_field)) if has_owner else ""

        rdev: tuple[int, int] | None = None
        if etype in (CHARDEV, BLOCKDEV):
            major = _number(major_field, "devmajor", where_m) if has_owner else 0
            minor = _number(minor_field, "devminor", where_m) if has_owner else 0
            if major < 0 or minor < 0:
                raise BadFieldError(f"{where_m}: negative device number {major},{minor}")
            rdev = (major, minor)

        if "size" in pax:
            size = _pax_decimal(pax["size"], "size", where_m, ImpossibleSizeError)
        else:
            size = _number(size_field, "size", where_m)
        if size < 0:
            raise ImpossibleSizeError(f"{where_m} has negative size {size}")
        if size > _INT64_MAX:
            raise ImpossibleSizeError(f"{where_m} claims {size} bytes, more than any stream can hold")
        data_size = 0 if typeflag in _HEADER_ONLY else size

        sparse: list[tuple[int, int]] | None = None
        apparent = data_size
        data_prefix = 0
        prefetched = b""
        if typeflag == _GNU_SPARSE:
            segments, apparent = self._old_gnu_sparse(block, where_m, pending)
            sparse = _check_sparse(segments, apparent, data_size, where_m)
        elif etype == FILE and typeflag not in _HEADER_ONLY:
            if "GNU.sparse.map" in pax:  # 0.1
                apparent = _pax_decimal(pax.get("GNU.sparse.size", b""), "GNU.sparse.size", where_m,
                                        ImpossibleSizeError)
                if pax["GNU.sparse.map"].count(b",") >= 2 * MAX_SPARSE_SEGMENTS:
                    raise ExtensionTooLargeError(f"{where_m}: more than {MAX_SPARSE_SEGMENTS} sparse segments")
                numbers = pax["GNU.sparse.map"].split(b",") if pax["GNU.sparse.map"] else []
                segments = _pairs(numbers, "GNU.sparse.map", where_m)
                _check_numblocks(pax, len(segments), where_m)
                sparse = _check_sparse(segments, apparent, data_size, where_m)
            elif "GNU.sparse.size" in pax:  # 0.0
                apparent = _pax_decimal(pax["GNU.sparse.size"], "GNU.sparse.size", where_m, ImpossibleSizeError)
                if len(pending.sparse_offsets) != len(pending.sparse_numbytes):
                    raise BadSparseMapError(
                        f"{where_m}: {len(pending.sparse_offsets)} GNU.sparse.offset records but "
                        f"{len(pending.sparse_numbytes)} GNU.sparse.numbytes records")
                numbers = [n for pair in zip(pending.sparse_offsets, pending.sparse_numbytes) for n in pair]
                segments = _pairs(numbers, "GNU.sparse.offset/numbytes", where_m)
                _check_numblocks(pax, len(segments), where_m)
                sparse = _check_sparse(segments, apparent, data_size, where_m)
            elif pax.get("GNU.sparse.major") == b"1" and pax.get("GNU.sparse.minor") == b"0":
                realsize = pax.get("GNU.sparse.realsize", pax.get("GNU.sparse.size", b""))
                apparent = _pax_decimal(realsize, "GNU.sparse.realsize", where_m, ImpossibleSizeError)
                segments, prefetched = self._pax_sparse_map(data_size, where_m)
                data_prefix = len(prefetched)
                sparse = _check_sparse(segments, apparent, data_size - data_prefix, where_m)
            elif "GNU.sparse.major" in pax or "GNU.sparse.minor" in pax:
                raise BadSparseMapError(
                    f"{where_m}: unsupported GNU sparse format "
                    f"{pax.get('GNU.sparse.major', b'?')!r}.{pax.get('GNU.sparse.minor', b'?')!r}")

        if etype == HARDLINK:
            link = normalize_path(link)
        elif etype != SYMLINK:
            link = ""
        xattrs = _xattrs(pax, where_m) if pax else {}

        entry = Entry(path=normalize_path(name), type=etype, mode=mode, uid=uid, gid=gid, uname=uname,
                      gname=gname, mtime_ns=mtime_ns, atime_ns=atime_ns, ctime_ns=ctime_ns,
                      size=apparent if etype == FILE else 0, link=link, rdev=rdev, xattrs=xattrs, sparse=sparse)
        member = TarMember(header=b"".join(pending.parts), entry=entry, data_size=data_size,
                           data_prefix=data_prefix, typeflag=typeflag, offset=pending.offset, _reader=self)
        self._current = member
        self._remaining = data_size - len(prefetched)
        self._prefetched = prefetched
        self._last_name = name
        if data_size == 0:
            member._padding = b""
        return member

    def _old_gnu_sparse(self, block: bytes, where: str, pending: _Pending) -> tuple[list[tuple[int, int]], int]:
        segments = _gnu_sparse_structs(block, 386, 4, where)
        apparent = _number(block[483:495], "realsize", where)
        extended = block[482]
        while extended:
            ext_offset = self._in.offset
            ext = self._in.read_upto(BLOCK)
            if len(ext) < BLOCK:
                raise TruncatedTarError(
                    f"{where}: stream ends inside a GNU sparse extension block at byte offset {ext_offset}")
            pending.add(ext)
            segments += _gnu_sparse_structs(ext, 0, 21, where)
            if len(segments) > MAX_SPARSE_SEGMENTS:
                raise ExtensionTooLargeError(f"{where}: more than {MAX_SPARSE_SEGMENTS} sparse segments")
            extended = ext[504]
        return segments, apparent

    def _pax_sparse_map(self, data_size: int, where: str) -> tuple[list[tuple[int, int]], bytes]:
        """Read the PAX 1.0 sparse map at the start of the data; return it and the blocks read.

        The map is decimal numbers, one per line: the count of segments, then offset and
        length of each; it is padded with NULs to a 512 boundary.
        """
        text = bytearray()
        values: list[int] = []
        count: int | None = None
        pos = 0  # start of the next number in text
        while count is None or len(values) < 2 * count:
            nl = text.find(b"\n", pos, pos + _MAX_MAP_NUMBER + 1)
            if nl < 0:
                if len(text) - pos > _MAX_MAP_NUMBER:
                    raise BadSparseMapError(
                        f"{where}: PAX 1.0 sparse map holds {bytes(text[pos:pos + 24])!r}..., not a number")
                if len(text) + BLOCK > data_size:
                    raise BadSparseMapError(f"{where}: the PAX 1.0 sparse map runs past the member's data")
                block_offset = self._in.offset
                block = self._in.read_upto(BLOCK)
                if len(block) < BLOCK:
                    raise TruncatedTarError(
                        f"{where} claims {data_size} bytes, stream ends after {len(text) + len(block)} "
                        f"(inside its sparse map, at byte offset {block_offset + len(block)})")
                text += block
                continue
            number = bytes(text[pos:nl])
            pos = nl + 1
            if not _DECIMAL_RE.match(number):
                raise BadSparseMapError(f"{where}: PAX 1.0 sparse map holds {number!r}, not a decimal number")
            if count is None:
                count = int(number)
                if count > MAX_SPARSE_SEGMENTS:
                    raise ExtensionTooLargeError(
                        f"{where}: PAX 1.0 sparse map claims {count} segments, more than {MAX_SPARSE_SEGMENTS}")
            else:
                values.append(int(number))
        return list(zip(values[::2], values[1::2])), bytes(text)


# -- field helpers


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


def _pax_decimal(value: bytes, label: str, where: str,
                 out_of_range: type[TarStreamError] = BadFieldError) -> int:
    if not _DECIMAL_RE.match(value):
        if value.isdigit():
            raise out_of_range(f"{where}: pax {label} has {len(value)} digits, out of range")
        raise BadPaxRecordError(f"{where}: pax {label}={value[:40]!r} is not a decimal number")
    number = int(value)
    if number > _INT64_MAX:
        raise out_of_range(f"{where}: pax {label}={number} is out of range")
    return number


def _pax_or_field(pax: dict[str, bytes], key: str, field: bytes, where: str) -> int:
    if key in pax:
        return _pax_decimal(pax[key], key, where)
    value = _number(field, key, where)
    if not 0 <= value <= _INT64_MAX:
        raise BadFieldError(f"{where}: {key} {value} is out of range")
    return value


def _pax_time(value: bytes, label: str, where: str) -> int:
    """Seconds as decimal text -> ns, truncated toward zero, exactly (integer arithmetic).

    An exponent (``1e-05``, ``5e-324``: Python's tarfile writes ``str(float)``) is accepted.
    """
    match = _TIME_RE.match(value)
    if match is None:
        raise BadPaxRecordError(f"{where}: pax {label}={value[:40]!r} is not a decimal time")
    sign, whole, frac, exponent = match.groups()
    if exponent is None:
        ns = int(whole) * 1_000_000_000 + int((frac or b"")[:9].ljust(9, b"0"))
    else:  # digits beyond 9 + 999 places after the point are below a nanosecond
        digits = (frac or b"")[:1100]
        shift = 9 + int(exponent) - len(digits)
        mantissa = int(whole + digits)
        ns = mantissa * 10**shift if shift >= 0 else mantissa // 10**-shift
    return -ns if sign else ns


def _deletes(key: str, value: bytes) -> bool:
    """An empty pax value deletes the keyword (POSIX), except an xattr's: it is an empty value."""
    return not value and not key.startswith(_XATTR_PREFIXES)


def _check_keys(records: dict[str, bytes], where: str) -> None:
    if len(records) > MAX_PAX_KEYS:
        raise ExtensionTooLargeError(f"pax header at {where}: more than {MAX_PAX_KEYS} distinct keywords")


def _iter_pax(data: bytes, where: str) -> Iterator[tuple[str, bytes]]:
    """The records of a pax extended header, in order: ``"%d %s=%s\\n"``."""
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] == 0 and data.count(0, pos) == end - pos:
            break  # NUL padding after the last record
        space = data.find(b" ", pos, min(end, pos + 21))
        length_field = data[pos:space] if space > pos else data[pos:pos + 20]
        if space <= pos or not _DECIMAL_RE.match(length_field):
            raise BadPaxRecordError(
                f"pax header at {where}: record at byte {pos} of its data has a bad length field "
                f"{length_field!r}")
        length = int(length_field)
        stop = pos + length
        if stop > end or stop <= space + 2 or data[stop - 1] != 0x0A:
            raise BadPaxRecordError(
                f"pax header at {where}: record at byte {pos} of its data has a bad length {length} "
                f"({end - pos} bytes left in the header)")
        equals = data.find(b"=", space + 1, stop - 1)
        if equals <= space + 1:
            raise BadPaxRecordError(f"pax header at {where}: record at byte {pos} of its data has no keyword=value")
        yield _text(data[space + 1:equals]), data[equals + 1:stop - 1]
        pos = stop


def _xattrs(pax: dict[str, bytes], where: str) -> dict[str, bytes]:
    xattrs: dict[str, bytes] = {}
    for key, value in pax.items():
        if key.startswith("LIBARCHIVE.xattr."):
            name = _text(unquote_to_bytes(key[len("LIBARCHIVE.xattr."):]))
            try:
                decoded = base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
            except ValueError:
                raise BadPaxRecordError(f"{where}: pax {key} is not base64") from None
            xattrs.setdefault(name, decoded)
    for key, value in pax.items():
        if key.startswith("SCHILY.xattr."):
            xattrs[key[len("SCHILY.xattr."):]] = value
    for key, name in (("SCHILY.acl.access", acl.ACCESS_XATTR), ("SCHILY.acl.default", acl.DEFAULT_XATTR)):
        acl_value = pax.get(key)
        if not acl_value or name in xattrs:  # GNU tar also writes the binary value as SCHILY.xattr.system.*
            continue
        if acl_value.startswith(_ACL_BINARY_MAGIC):
            xattrs[name] = acl_value
            continue
        try:
            binary = acl.text_to_xattr(acl_value.decode("utf-8"))
            minimal = acl.is_minimal(binary)
        except (acl.AclError, ValueError) as error:  # ValueError: not UTF-8, a NUL in a name
            raise BadPaxRecordError(f"{where}: pax {key}: {error}") from None
        if name == acl.ACCESS_XATTR and minimal:
            continue
        xattrs[name] = binary
    return xattrs


def _gnu_sparse_structs(block: bytes, start: int, count: int, where: str) -> list[tuple[int, int]]:
    segments: list[tuple[int, int]] = []
    for index in range(count):
        pos = start + 24 * index
        offset_field, numbytes_field = block[pos:pos + 12], block[pos + 12:pos + 24]
        if numbytes_field[0] == 0 and offset_field[0] == 0:
            break
        try:
            segments.append((_number(offset_field, "sparse offset", where),
                             _number(numbytes_field, "sparse numbytes", where)))
        except BadFieldError as error:
            raise BadSparseMapError(str(error)) from None
    return segments


def _pairs(numbers: list[bytes], label: str, where: str) -> list[tuple[int, int]]:
    if len(numbers) % 2:
        raise BadSparseMapError(f"{where}: {label} has an odd count of numbers ({len(numbers)})")
    values = []
    for number in numbers:
        if not _DECIMAL_RE.match(number):
            raise BadSparseMapError(f"{where}: {label} holds {number[:40]!r}, not a decimal number")
        values.append(int(number))
    return list(zip(values[::2], values[1::2]))


def _check_numblocks(pax: dict[str, bytes], count: int, where: str) -> None:
    if "GNU.sparse.numblocks" in pax:
        declared = _pax_decimal(pax["GNU.sparse.numblocks"], "GNU.sparse.numblocks", where)
        if declared != count:
            raise BadSparseMapError(f"{where}: GNU.sparse.numblocks={declared} but the map has {count} segments")


def _check_sparse(segments: list[tuple[int, int]], apparent: int, packed: int, where: str) -> list[tuple[int, int]]:
    """The data segments (zero-length ones dropped), checked against the sizes."""
    if not 0 <= apparent <= _INT64_MAX:
        raise ImpossibleSizeError(f"{where}: sparse file size {apparent} is out of range")
    out: list[tuple[int, int]] = []
    position = 0
    total = 0
    for offset, length in segments:
        if offset < position or length < 0 or offset + length > apparent:
            raise BadSparseMapError(
                f"{where}: sparse segment ({offset}, {length}) overlaps, is out of order or ends past the "
                f"file size {apparent}")
        if length:
            out.append((offset, length))
            position = offset + length
            total += length
    if total != packed:
        raise BadSparseMapError(
            f"{where}: sparse map holds {total} bytes of data but the member stores {packed}")
    return out
