"""Write entries as a POSIX (PAX) tar that GNU tar extracts to the same tree.

Streaming: content is copied block by block from each entry's source, and nothing is
kept per member (unlike ``tarfile.TarFile``, which remembers every member). The PAX
extended header of each member is built here and the ustar header after it by
``tarfile.TarInfo.tobuf`` with every field that needs PAX already moved out, so
``tarfile`` adds nothing of its own. Binary values (xattrs, non-UTF-8 names) are
written raw *without* ``hdrcharset=BINARY``: GNU tar takes the bytes as they are and
warns about every ``hdrcharset`` record, and Python's ``tarfile`` falls back to
``surrogateescape`` for values that are not UTF-8.

What goes where:

- times: ``mtime`` (and ``atime`` / ``ctime`` when known) as PAX records with all nine
  nanosecond digits; the ustar field holds the whole seconds;
- ``uname`` / ``gname`` and numeric ids (large ids through PAX records);
- xattrs as ``SCHILY.xattr.<name>`` (values raw), except POSIX ACLs, which go as GNU tar
  text into ``SCHILY.acl.access`` / ``SCHILY.acl.default`` (numeric ids; see
  ``dedupe.acl``) so ``tar --acls`` restores them;
- the root entry (path ``""``) as ``./``; directories with a trailing ``/``;
- hard links, symlinks, character and block devices, fifos as their ustar types;
- sparse files as GNU sparse format 1.0 (PAX records ``GNU.sparse.major=1``,
  ``minor=0``, ``name``, ``realsize``; member name ``<dir>/GNUSparseFile.0/<name>``;
  the data starts with the decimal map padded to 512 bytes, then the data segments),
  which GNU tar (1.21 and later) and Python's ``tarfile`` extract with their holes. A
  trailing ``(realsize, 0)`` segment marks a file that ends in a hole, as GNU tar does.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, Final

from dedupe.acl import ACCESS_XATTR, DEFAULT_XATTR, AclError, xattr_to_text
from dedupe.entries import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry
from dedupe.errors import DedupeError

DataSource = Callable[[], Iterator[bytes]] | None

BLOCK: Final = tarfile.BLOCKSIZE
RECORD: Final = tarfile.RECORDSIZE
_TYPES: Final = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, SYMLINK: tarfile.SYMTYPE, HARDLINK: tarfile.LNKTYPE,
                 CHARDEV: tarfile.CHRTYPE, BLOCKDEV: tarfile.BLKTYPE, FIFO: tarfile.FIFOTYPE}


class PaxWriteError(DedupeError):
    """An entry cannot be written to the tar (content of the wrong length, bad entry)."""

    exit_code = 54


def write_pax(out: BinaryIO, entries: Iterable[tuple[Entry, DataSource]]) -> int:
    """Write the entries as a PAX tar to ``out``; return the number of bytes written."""
    written = 0
    for piece in pax_pieces(entries):
        out.write(piece)
        written += len(piece)
    return written


def pax_pieces(entries: Iterable[tuple[Entry, DataSource]]) -> Iterator[bytes | memoryview]:
    """The PAX tar of the entries as pieces, in order (for writers that pull, such as
    an upload into LXD's import)."""
    written = 0
    for entry, data in entries:
        header, prefix, length = _member(entry)
        yield header
        written += len(header)
        size = len(prefix) + length
        if size:
            if prefix:
                yield prefix
            done = 0
            for block in (data() if data is not None and length else ()):
                if done + len(block) > length:
                    raise PaxWriteError(f"tar member {entry.path!r}: content is longer than its size {length}")
                yield block
                done += len(block)
            if done != length:
                raise PaxWriteError(f"tar member {entry.path!r}: content is {done} bytes, its size is {length}")
            written += size
            if size % BLOCK:
                pad = BLOCK - size % BLOCK
                yield bytes(pad)
                written += pad
    end = 2 * BLOCK
    end += -(written + end) % RECORD
    yield bytes(end)


def _member(entry: Entry) -> tuple[bytes, bytes, int]:
    """The headers of an entry, the bytes its data starts with, and its content length."""
    kind = _TYPES.get(entry.type)
    if kind is None:
        raise PaxWriteError(f"tar member {entry.path!r}: unknown entry type {entry.type!r}")
    pax: dict[str, bytes] = {}
    info = tarfile.TarInfo()
    info.type = kind
    info.mode = entry.mode & 0o7777
    info.mtime = min(max(entry.mtime_ns // 1_000_000_000, 0), 8**11 - 1)
    pax["mtime"] = _pax_time(entry.mtime_ns)
    if entry.atime_ns is not None:
        pax["atime"] = _pax_time(entry.atime_ns)
    if entry.ctime_ns is not None:
        pax["ctime"] = _pax_time(entry.ctime_ns)
    info.uid = _number(pax, "uid", entry.uid, 8)
    info.gid = _number(pax, "gid", entry.gid, 8)
    info.uname = _text(pax, "uname", entry.uname, 32)
    info.gname = _text(pax, "gname", entry.gname, 32)
    prefix, length = b"", 0
    name = entry.path or "."
    if entry.type in (SYMLINK, HARDLINK):
        info.linkname = _text(pax, "linkpath", entry.link, 100)
    elif entry.type in (CHARDEV, BLOCKDEV):
        if entry.rdev is None:
            raise PaxWriteError(f"tar member {entry.path!r}: device without major/minor numbers")
        info.devmajor, info.devminor = entry.rdev
    elif entry.type == DIR:
        name += "/"
    elif entry.type == FILE:
        if entry.sparse is None:
            length = entry.size
        else:
            prefix, length = _sparse_map(entry), sum(seg_len for _, seg_len in entry.sparse)
            head, tail = posixpath.split(entry.path)
            name = posixpath.join(head, "GNUSparseFile.0", tail)
            pax.update({"GNU.sparse.major": b"1", "GNU.sparse.minor": b"0",
                        "GNU.sparse.name": _raw(entry.path), "GNU.sparse.realsize": str(entry.size).encode()})
        info.size = _number(pax, "size", len(prefix) + length, 12)
    info.name = _text(pax, "path", name, 100)
    if entry.type == DIR and not info.name.endswith("/"):  # tarfile would add the '/' and a PAX record of its own
        info.name = info.name[:99] + "/"
    for key, value in entry.xattrs.items():
        if key in (ACCESS_XATTR, DEFAULT_XATTR):
            try:
                text = xattr_to_text(value)
            except AclError as error:
                raise PaxWriteError(f"tar member {entry.path!r}: {key}: {error}") from None
            pax["SCHILY.acl.access" if key == ACCESS_XATTR else "SCHILY.acl.default"] = text.encode("ascii")
        else:
            pax["SCHILY.xattr." + key] = value
    header = info.tobuf(tarfile.PAX_FORMAT, "ascii", "replace")
    if len(header) != BLOCK:  # tarfile added PAX records: a field was not moved out above
        raise PaxWriteError(f"tar member {entry.path!r}: internal error, unexpected PAX records from tarfile")
    return _pax_header(pax) + header, prefix, length


def _text(pax: dict[str, bytes], key: str, value: str, width: int) -> str:
    """The ustar field for a string; the value goes to a PAX record when it does not fit."""
    raw = _raw(value)
    if raw.isascii() and len(raw) <= width:
        return value
    pax[key] = raw
    return raw[:width].decode("ascii", "replace").replace("\ufffd", "_")[:width]


def _number(pax: dict[str, bytes], key: str, value: int, digits: int) -> int:
    if 0 <= value < 8 ** (digits - 1):
        return value
    pax[key] = str(value).encode()
    return 0


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _pax_header(records: dict[str, bytes]) -> bytes:
    body = b"".join(_record(key.encode("utf-8", "surrogateescape"), value) for key, value in records.items())
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = len(body)
    return info.tobuf(tarfile.USTAR_FORMAT, "ascii", "replace") + body + bytes(-len(body) % BLOCK)


def _record(key: bytes, value: bytes) -> bytes:
    """One ``"<length> <key>=<value>\\n"`` record; the length counts its own digits."""
    rest = len(key) + len(value) + 3
    length = rest + len(str(rest))
    if len(str(length)) != len(str(rest)):
        length = rest + len(str(length))
    return str(length).encode() + b" " + key + b"=" + value + b"\n"


def _sparse_map(entry: Entry) -> bytes:
    segments = list(entry.sparse or [])
    end = 0
    for offset, length in segments:
        if offset < end or length < 0 or offset + length > entry.size:
            raise PaxWriteError(f"tar member {entry.path!r}: malformed sparse map")
        end = offset + length
    if end < entry.size or not segments:
        segments.append((entry.size, 0))  # the file ends in a hole
    text = f"{len(segments)}\n" + "".join(f"{offset}\n{length}\n" for offset, length in segments)
    raw = text.encode("ascii")
    return raw + bytes(-len(raw) % BLOCK)


def _pax_time(ns: int) -> bytes:
    sign = "-" if ns < 0 else ""
    seconds, fraction = divmod(abs(ns), 1_000_000_000)
    return f"{sign}{seconds}.{fraction:09d}".encode("ascii")
