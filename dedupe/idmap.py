"""LXD idmaps: the uid/gid shift of an unprivileged container, undone and redone (pure).

One class for both sides: the direct read (dedupe.lxd.direct) unshifts what it reads
(owners, ACL entries, capability rootid); the restores, ``ls`` and ``diff`` of LXD
backups (dedupe.restore.instance_view) map owners either way.

LXD shifts a started unprivileged container's files on disk (dir and btrfs pools,
without idmapped mounts): container id N is host id ``Hostid + N - Nsid`` for the range
that holds it. ``volatile.last_state.idmap`` says how the files on disk are shifted (a
JSON list of ``{Isuid, Isgid, Hostid, Nsid, Maprange}``; ``[]`` when they are not:
privileged or never-started containers). A direct backup stores ids as the container
sees them, so a restore onto another server, project or idmap is right: LXD shifts
them again on the next start, from ``volatile.last_state.idmap: '[]'``.

Ids live in three more places, which LXD's own tar writer unshifts too: the ACL_USER
and ACL_GROUP entries of POSIX ACL xattrs and the rootid of a v3 ``security.capability``.
Host ids outside every range (a file the host put there) are kept as they are.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Final

from dedupe.entries import Entry
from dedupe.errors import DedupeError

ACL_XATTRS: Final = ("system.posix_acl_access", "system.posix_acl_default")
CAPS_XATTR: Final = "security.capability"
_ACL_USER: Final = 0x02
_ACL_GROUP: Final = 0x08
_VFS_CAP_REVISION_3: Final = 0x03000000
_VFS_CAP_REVISION_MASK: Final = 0xFF000000
_CAPS_V3_SIZE: Final = 24


class IdmapError(DedupeError):
    """An instance's idmap (``volatile.last_state.idmap``) cannot be read."""

    exit_code = 64


@dataclass(frozen=True)
class IdRange:
    is_uid: bool
    is_gid: bool
    host: int
    ns: int
    count: int


@dataclass(frozen=True)
class IdMap:
    ranges: tuple[IdRange, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> IdMap:
        """From LXD's JSON (``""``/``None``/``[]``: no shift)."""
        try:
            raw: Any = json.loads(text or "[]")
            ranges = tuple(
                IdRange(bool(r.get("Isuid")), bool(r.get("Isgid")), int(r["Hostid"]), int(r["Nsid"]),
                        int(r["Maprange"]))
                for r in raw or []
            )
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise IdmapError(f"idmap {text!r} is not LXD's JSON idmap ({e})") from None
        return cls(ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    @classmethod
    def parse_lenient(cls, text: str | None) -> IdMap:
        """As ``parse``, but an idmap that does not read is no shift (a stored backup's
        record: its files are shown as stored rather than refused)."""
        try:
            return cls.parse(text)
        except IdmapError:
            return cls()

    def uid(self, host: int) -> int:
        """Host uid -> the instance's (outside every range: kept, as the instance sees the
        overflow id)."""
        return self._unshift(host, True)

    def gid(self, host: int) -> int:
        return self._unshift(host, False)

    def _unshift(self, host: int, user: bool) -> int:
        for r in self.ranges:
            if (r.is_uid if user else r.is_gid) and r.host <= host < r.host + r.count:
                return host - r.host + r.ns
        return host

    def _shift(self, ns: int, user: bool) -> int:
        for r in self.ranges:
            if (r.is_uid if user else r.is_gid) and r.ns <= ns < r.ns + r.count:
                return ns - r.ns + r.host
        return ns

    def host_root(self) -> tuple[int, int]:
        """The host's uid and gid of the instance's root."""
        return self._shift(0, True), self._shift(0, False)

    def unshifted(self, e: Entry) -> Entry:
        """A copy of ``e`` with the owners the instance sees (names dropped: they are the host's)."""
        uid, gid = self.uid(e.uid), self.gid(e.gid)
        return e if (uid, gid) == (e.uid, e.gid) else e.replace(uid=uid, gid=gid, uname="", gname="")

    def shifted(self, e: Entry) -> Entry:
        """A copy of ``e`` with the owners the host's disk holds."""
        uid, gid = self._shift(e.uid, True), self._shift(e.gid, False)
        return e if (uid, gid) == (e.uid, e.gid) else e.replace(uid=uid, gid=gid, uname="", gname="")

    def unshift_entry(self, entry: Entry) -> None:
        """In place (the direct read's entries): ids of ``entry`` (owner, ACL entries, capability rootid) as the container sees them."""
        entry.uid, entry.gid = self.uid(entry.uid), self.gid(entry.gid)
        self.unshift_xattrs(entry.xattrs)

    def unshift_xattrs(self, xattrs: dict[str, bytes]) -> None:
        """ACL entries and capability rootid of ``xattrs``, in place."""
        if not xattrs:
            return
        for key in ACL_XATTRS:
            if key in xattrs:
                xattrs[key] = self.unshift_acl(xattrs[key])
        if CAPS_XATTR in xattrs:
            xattrs[CAPS_XATTR] = self.unshift_caps(xattrs[CAPS_XATTR])

    def unshift_acl(self, value: bytes) -> bytes:
        """The kernel's binary ACL (version 2 header, then 8-byte tag/perm/id entries)."""
        if len(value) < 4 or (len(value) - 4) % 8:
            return value  # not an ACL the kernel wrote: leave it as read
        out = bytearray(value)
        for at in range(4, len(value), 8):
            tag, _perm, ident = struct.unpack_from("<HHI", value, at)
            if tag == _ACL_USER:
                struct.pack_into("<I", out, at + 4, self.uid(ident))
            elif tag == _ACL_GROUP:
                struct.pack_into("<I", out, at + 4, self.gid(ident))
        return bytes(out)

    def unshift_caps(self, value: bytes) -> bytes:
        """A v3 file capability's rootid (v2 has none)."""
        if len(value) != _CAPS_V3_SIZE:
            return value
        (magic,) = struct.unpack_from("<I", value, 0)
        if magic & _VFS_CAP_REVISION_MASK != _VFS_CAP_REVISION_3:
            return value
        (rootid,) = struct.unpack_from("<I", value, 20)
        out = bytearray(value)
        struct.pack_into("<I", out, 20, self.uid(rootid))
        return bytes(out)
