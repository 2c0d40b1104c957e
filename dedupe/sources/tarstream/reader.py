"""The tar reader: members one by one, each with its raw header bytes, its entry and
its data (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dedupe.entries import BLOCKDEV, CHARDEV, DIR, FILE, HARDLINK, SYMLINK, Entry
from dedupe.sources.tarstream.errors import (
    BadFieldError, DanglingExtensionError, ExtensionTooLargeError, ImpossibleSizeError, NotATarError, TarStreamError,
    TruncatedTarError
)
from dedupe.sources.tarstream.fields import (
    BLOCK, _EXTENSION_KINDS, _FIELDS, _GNU_LONGLINK, _GNU_LONGNAME, _GNU_MAGIC, _GNU_SPARSE, _HEADER_ONLY, _INT64_MAX,
    MAX_EXTENSION_SIZE, MAX_SPARSE_SEGMENTS, _PAX_GLOBAL, _PAX_LOCAL, READ_SIZE, _TIME_NS_MAX, _TIME_NS_MIN, _TYPE_MAP,
    _USTAR_MAGIC, _ZERO_BLOCK, _check_checksum, _checksum_matches, _cstr, normalize_path, _number, _sniff, _text
)
from dedupe.sources.tarstream.pax import (
    _check_keys, _deletes, _iter_pax, _pax_decimal, _pax_or_field, _pax_time, _xattrs
)
from dedupe.sources.tarstream.sparse import member_sparse
from dedupe.sources.tarstream.input import _Input, _Pending, Readable


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
        mtime_ns, atime_ns, ctime_ns = _member_times(pax, block, mtime_field, is_gnu, where_m)
        uname = _text(pax["uname"]) if "uname" in pax else _text(_cstr(uname_field)) if has_owner else ""
        gname = _text(pax["gname"]) if "gname" in pax else _text(_cstr(gname_field)) if has_owner else ""

        rdev: tuple[int, int] | None = None
        if etype in (CHARDEV, BLOCKDEV):
            major = _number(major_field, "devmajor", where_m) if has_owner else 0
            minor = _number(minor_field, "devminor", where_m) if has_owner else 0
            if major < 0 or minor < 0:
                raise BadFieldError(f"{where_m}: negative device number {major},{minor}")
            rdev = (major, minor)

        size = _member_size(pax, size_field, where_m)
        data_size = 0 if typeflag in _HEADER_ONLY else size

        sparse, apparent, data_prefix, prefetched = member_sparse(
            self._in, block, typeflag, etype, pax, data_size, where_m, pending)

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


def _member_times(pax: dict[str, bytes], block: bytes, mtime_field: bytes, is_gnu: bool,
                  where_m: str) -> tuple[int, int | None, int | None]:
    """mtime, atime and ctime in ns: pax records first, then the header's fields (GNU
    headers keep atime and ctime where ustar has the name prefix); each in range."""
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
    return mtime_ns, atime_ns, ctime_ns


def _member_size(pax: dict[str, bytes], size_field: bytes, where_m: str) -> int:
    """The size a member's header (or its pax ``size`` record) claims, checked."""
    if "size" in pax:
        size = _pax_decimal(pax["size"], "size", where_m, ImpossibleSizeError)
    else:
        size = _number(size_field, "size", where_m)
    if size < 0:
        raise ImpossibleSizeError(f"{where_m} has negative size {size}")
    if size > _INT64_MAX:
        raise ImpossibleSizeError(f"{where_m} claims {size} bytes, more than any stream can hold")
    return size
