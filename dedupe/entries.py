"""One file-system entry, as tar members and directory walks describe it.

The shared vocabulary of the tar source, the directory source, the directory sink
and the PAX tar writer. Stored in manifest item streams through ``to_item`` /
``from_item``, as ``repo_format.items`` spells it (FORMAT.md section 9.3).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Final

from repo_format import items

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
        """The compact msgpack map of FORMAT.md section 9.3 (``repo_format.items``)."""
        return items.entry_map(self.path, self.type, self.mode, self.uid, self.gid, self.mtime_ns, self.uname,
                               self.gname, self.atime_ns, self.ctime_ns, self.size, self.link, self.rdev,
                               self.xattrs, self.sparse, self.chunks)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Entry:
        return cls(**items.entry_fields(item))

    def replace(self, **changes: Any) -> Entry:
        return dataclasses.replace(self, **changes)
