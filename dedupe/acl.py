"""POSIX ACLs: the kernel's binary xattr value and GNU tar's text form.

The kernel stores an ACL in ``system.posix_acl_access`` / ``system.posix_acl_default``
as a little-endian u32 version (2) followed by 8-byte entries (u16 tag, u16 perm,
u32 id), sorted by tag and then id. GNU tar (``--acls --format=posix``) writes the
same ACL as text in the PAX records ``SCHILY.acl.access`` / ``SCHILY.acl.default``:
``tag:qualifier:perms`` entries. GNU tar 1.34 really writes them one per line with a
trailing newline and with user and group *names* (even with ``--numeric-owner``), e.g.
``"user::rw-\nuser:alice:r--\ngroup::r--\nmask::r--\nother::r--\n"``, and it writes
an access ACL for every member, the "minimal" one derived from the mode included
(``is_minimal`` recognises those). star writes them comma-separated with a trailing
``:id`` on named entries. GNU tar reads them back with ``acl_from_text``, which takes
commas or newlines and numeric ids or names.

``xattr_to_text`` always writes numeric ids (a backup must not depend on this host's
user database). ``text_to_xattr`` accepts what GNU tar, star and ``getfacl`` write:
long or one-letter tags, numeric ids or names (names are looked up on this host),
star's trailing ``:id`` field (which wins over the name), ``#`` comments (such as
``#effective:r--``), a ``default:`` prefix, and commas, newlines or whitespace between
entries. It returns the canonical (sorted) kernel form.
"""

from __future__ import annotations

import grp
import pwd
import re
import struct
from typing import Final

from dedupe.errors import DedupeError

ACL_VERSION: Final = 2
UNDEFINED_ID: Final = 0xFFFFFFFF

USER_OBJ: Final = 0x01
USER: Final = 0x02
GROUP_OBJ: Final = 0x04
GROUP: Final = 0x08
MASK: Final = 0x10
OTHER: Final = 0x20

ACCESS_XATTR: Final = "system.posix_acl_access"
DEFAULT_XATTR: Final = "system.posix_acl_default"

_HEADER: Final = struct.Struct("<I")
_ENTRY: Final = struct.Struct("<HHI")

_TAG_NAMES: Final = {USER_OBJ: "user", USER: "user", GROUP_OBJ: "group", GROUP: "group", MASK: "mask", OTHER: "other"}
_TEXT_TAGS: Final = {"user": "user", "u": "user", "group": "group", "g": "group", "mask": "mask", "m": "mask",
                     "other": "other", "o": "other"}
_PERM_RE: Final = re.compile(r"[rwx-]{1,3}")
_ID_RE: Final = re.compile(r"[0-9]+")


class AclError(DedupeError):
    """An ACL, in binary or text form, is malformed."""

    exit_code = 52


def xattr_to_text(value: bytes) -> str:
    """The text form of a kernel ACL xattr value: comma-separated, numeric ids.

    E.g. ``user::rw-,user:1000:r--,group::r--,mask::r--,other::r--``.
    """
    return ",".join(f"{_TAG_NAMES[tag]}:{ident if tag in (USER, GROUP) else ''}:{_perm_text(perm)}"
                    for tag, perm, ident in _decode(value))


def is_minimal(value: bytes) -> bool:
    """True when a kernel ACL value holds only user::, group:: and other:: (the mode bits)."""
    return all(tag in (USER_OBJ, GROUP_OBJ, OTHER) for tag, _, _ in _decode(value))


def _decode(value: bytes) -> list[tuple[int, int, int]]:
    if len(value) < _HEADER.size or (len(value) - _HEADER.size) % _ENTRY.size:
        raise AclError(f"malformed ACL xattr value: length {len(value)} is not 4 + 8*n")
    (version,) = _HEADER.unpack_from(value, 0)
    if version != ACL_VERSION:
        raise AclError(f"malformed ACL xattr value: version {version}, expected {ACL_VERSION}")
    entries = list(_ENTRY.iter_unpack(value[_HEADER.size:]))
    for tag, perm, _ in entries:
        if tag not in _TAG_NAMES:
            raise AclError(f"malformed ACL xattr value: unknown tag {tag:#x}")
        if perm & ~7:
            raise AclError(f"malformed ACL xattr value: permission bits {perm:#o} out of range")
    return entries


def text_to_xattr(text: str) -> bytes:
    """The canonical kernel xattr value of an ACL in text form (see the module doc)."""
    entries: dict[tuple[int, int], int] = {}
    for raw in re.split(r"[,\n]", text):
        item = raw.split("#", 1)[0].strip()
        if not item:
            continue
        tag, ident, perm = _parse_entry(item)
        if (tag, ident) in entries:
            raise AclError(f"malformed ACL text: duplicate entry {item!r}")
        entries[(tag, ident)] = perm
    if entries:
        tags = {tag for tag, _ in entries}
        for required, name in ((USER_OBJ, "user::"), (GROUP_OBJ, "group::"), (OTHER, "other::")):
            if required not in tags:
                raise AclError(f"malformed ACL text: no {name} entry in {text!r}")
        if tags & {USER, GROUP} and MASK not in tags:
            raise AclError(f"malformed ACL text: named entries but no mask:: entry in {text!r}")
    out = bytearray(_HEADER.pack(ACL_VERSION))
    for (tag, ident), perm in sorted(entries.items()):
        out += _ENTRY.pack(tag, perm, ident)
    return bytes(out)


def _parse_entry(item: str) -> tuple[int, int, int]:
    fields = [f.strip() for f in item.split(":")]
    if fields[0] in ("default", "d") and len(fields) > 3:
        fields = fields[1:]
    if len(fields) not in (3, 4):
        raise AclError(f"malformed ACL text: entry {item!r} is not tag:qualifier:perms")
    kind = _TEXT_TAGS.get(fields[0])
    if kind is None:
        raise AclError(f"malformed ACL text: unknown tag in entry {item!r}")
    qualifier, perm_text = fields[1], fields[2]
    if len(fields) == 4:  # star: user:name:perms:uid
        if not _ID_RE.fullmatch(fields[3]):
            raise AclError(f"malformed ACL text: bad numeric id in entry {item!r}")
        qualifier = fields[3]
    perm = _parse_perm(perm_text, item)
    if kind in ("mask", "other"):
        if qualifier:
            raise AclError(f"malformed ACL text: {kind} entry with a qualifier: {item!r}")
        return (MASK if kind == "mask" else OTHER), UNDEFINED_ID, perm
    if not qualifier:
        return (USER_OBJ if kind == "user" else GROUP_OBJ), UNDEFINED_ID, perm
    return (USER if kind == "user" else GROUP), _resolve_id(kind, qualifier, item), perm


def _parse_perm(text: str, item: str) -> int:
    if not _PERM_RE.fullmatch(text):
        raise AclError(f"malformed ACL text: bad permissions in entry {item!r}")
    perm = 0
    for ch, bit in (("r", 4), ("w", 2), ("x", 1)):
        count = text.count(ch)
        if count > 1:
            raise AclError(f"malformed ACL text: bad permissions in entry {item!r}")
        perm |= bit if count else 0
    return perm


def _resolve_id(kind: str, qualifier: str, item: str) -> int:
    if _ID_RE.fullmatch(qualifier):
        ident = int(qualifier)
        if ident >= UNDEFINED_ID:
            raise AclError(f"malformed ACL text: id out of range in entry {item!r}")
        return ident
    try:
        return pwd.getpwnam(qualifier).pw_uid if kind == "user" else grp.getgrnam(qualifier).gr_gid
    except KeyError:
        raise AclError(f"ACL entry {item!r} names a {kind} unknown on this host") from None


def _perm_text(perm: int) -> str:
    return ("r" if perm & 4 else "-") + ("w" if perm & 2 else "-") + ("x" if perm & 1 else "-")
