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

from dedupe.sources.tarstream.errors import (
    BadChecksumError,
    BadFieldError,
    BadPaxRecordError,
    BadSparseMapError,
    DanglingExtensionError,
    ExtensionTooLargeError,
    ImpossibleSizeError,
    NotATarError,
    TarStreamError,
    TruncatedTarError,
)
from dedupe.sources.tarstream.fields import (
    BLOCK, MAX_EXTENSION_SIZE, MAX_HEADER_SIZE, MAX_PAX_KEYS, MAX_SPARSE_SEGMENTS, READ_SIZE, normalize_path
)
from dedupe.sources.tarstream.input import Readable
from dedupe.sources.tarstream.reader import TarMember, TarReader

__all__ = [
    "BadChecksumError",
    "BadFieldError",
    "BadPaxRecordError",
    "BadSparseMapError",
    "BLOCK",
    "DanglingExtensionError",
    "ExtensionTooLargeError",
    "ImpossibleSizeError",
    "MAX_EXTENSION_SIZE",
    "MAX_HEADER_SIZE",
    "MAX_PAX_KEYS",
    "MAX_SPARSE_SEGMENTS",
    "normalize_path",
    "NotATarError",
    "READ_SIZE",
    "Readable",
    "TarMember",
    "TarReader",
    "TarStreamError",
    "TruncatedTarError",
]
