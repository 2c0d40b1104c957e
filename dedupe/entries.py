"""One file-system entry, as tar members and directory walks describe it.

The shared vocabulary of the tar source, the directory source, the directory sink
and the PAX tar writer. Stored in manifest item streams through ``to_item`` /
``from_item`` (FORMAT.md section 9.3 gives the key names).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Final

# Entry types (one character, stored as is).
FILE: Final = "f"
DIR: Final = "d"
SYMLINK: Final = "l"
HARDLINK: Final = "h"  # a second name for a file stored earlier; ``link`` names it
CHARDEV: Final = "c"
BLOCKDEV: Final = "b"
FIFO: Final = "p"
ENTRY_TYPES: Final = frozenset({FILE, DIR, SYMLINK, HARDLINK, CHARDEV, BLOCKDEV, FIFO})

ChunkRef = tuple[bytes, int]  # (chunk id, raw length)


@dataclass
class Entry:
    """Metadata of one entry; content is referenced by ``chunks``.

    ``path`` is relative, '/'-separated, without a leading './' or '/' and without a
    trailing '/'. Names that are not UTF-8 are carried with ``surrogateescape``.
    ``xattrs`` holds every extended attribute as the kernel gives it, POSIX ACLs
    included (``system.posix_acl_access`` / ``system.posix_acl_default`` in the
    kernel's binary form; ``dedupe.acl`` converts to and from GNU tar's text form).
    ``sparse`` lists the data segments ``(offset, length)`` of a sparse file; the
    content (``chunks``) is then those segments back to back, and ``size`` is the
    apparent size. ``None`` means a dense file whose content is ``size`` bytes.
    """

    path: str
    type: str
    mode: int = 0o644  # permission bits including setuid, setgid and sticky (07777)
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    mtime_ns: int = 0
    atime_ns: int | None = None
    ctime_ns: int | None = None  # informational; cannot be restored
    size: int = 0
    link: str = ""  # symlink target, or the path a hardlink points to
    rdev: tuple[int, int] | None = None  # (major, minor) of a device
    xattrs: dict[str, bytes] = field(default_factory=dict)
    sparse: list[tuple[int, int]] | None = None
    chunks: list[ChunkRef] = field(default_factory=list)

    def to_item(self) -> dict[str, Any]:
        """The compact msgpack map of FORMAT.md section 9.3 (defaults left out)."""
        item: dict[str, Any] = {"p": _name_out(self.path), "t": self.type, "m": self.mode, "u": self.uid, "g": self.gid,
                                "mt": self.mtime_ns}
        if self.uname:
            item["un"] = self.uname
        if self.gname:
            item["gn"] = self.gname
        if self.atime_ns is not None:
            item["at"] = self.atime_ns
        if self.ctime_ns is not None:
            item["ct"] = self.ctime_ns
        if self.size:
            item["sz"] = self.size
        if self.link:
            item["lt"] = _name_out(self.link)
        if self.rdev is not None:
            item["dv"] = list(self.rdev)
        if self.xattrs:
            item["x"] = dict(self.xattrs)
        if self.sparse is not None:
            item["sp"] = [list(seg) for seg in self.sparse]
        if self.chunks:
            item["c"] = [list(ref) for ref in self.chunks]
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Entry:
        rdev = item.get("dv")
        sparse = item.get("sp")
        return cls(
            path=_name_in(item["p"]), type=item["t"], mode=item.get("m", 0o644), uid=item.get("u", 0),
            gid=item.get("g", 0), uname=item.get("un", ""), gname=item.get("gn", ""),
            mtime_ns=item.get("mt", 0), atime_ns=item.get("at"), ctime_ns=item.get("ct"),
            size=item.get("sz", 0), link=_name_in(item.get("lt", "")),
            rdev=(rdev[0], rdev[1]) if rdev is not None else None,
            xattrs=dict(item.get("x", {})),
            sparse=[(s[0], s[1]) for s in sparse] if sparse is not None else None,
            chunks=[(c[0], c[1]) for c in item.get("c", [])],
        )

    def replace(self, **changes: Any) -> Entry:
        return dataclasses.replace(self, **changes)


def _name_out(name: str) -> str | bytes:
    """A name as stored: UTF-8 text, or the raw bytes when it is not valid UTF-8."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name)


def _name_in(name: str | bytes) -> str:
    return os.fsdecode(name) if isinstance(name, bytes) else name
