"""Unchanged LXD snapshots taken over from the previous direct backup, not walked again.

An LXD snapshot is immutable by contract: LXD never writes into it after taking it.
A direct backup therefore records, per snapshot, who it is and where its entries are in
the item stream (``meta["lxd"]["snapshot_items"]``: its ``id``, the item chunks
``manifest.items[a:b]`` that hold exactly its ``entries`` items, and its ``size`` of
content: the walk cuts the item stream before and after each snapshot,
``BackupSession.mark_items``). The next night takes those item chunks over
(``BackupSession.reuse_items``) when the snapshot still has the same identity:

- its name and LXD's ``created_at``;
- ``lstat`` of its root directory and of its ``backup.yaml`` (inode, size, mtime,
  ctime): a snapshot deleted and taken again under the same name is a new directory;
- on btrfs, the read-only subvolume's uuid and generation (``btrfs subvolume show``),
  which move with any write to it, even one made after turning it writable by hand.

What is not seen (the README says so): on a dir pool, a snapshot edited in place by
hand below its root directory keeps its identity; ``--rescan-snapshots`` walks every
snapshot again. The previous backup is the one this group's files cache was written
after (a missing cache only means a full walk), and a snapshot is only taken over when
its recorded items decode to that many entries under its own prefix and every content
chunk they name is still in the repository (``BackupSession.reuse_refs``; else it is
walked).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from dedupe.errors import DedupeError
from dedupe.lxd.direct import btrfs
from dedupe.repository import Repository
from dedupe.read import read_chunks
from repo_format import items

Refs = list[tuple[bytes, int]]


class Reused(NamedTuple):
    """Item chunks of an earlier backup holding one snapshot's entries."""

    refs: Refs  # the item chunks
    count: int  # the entries (items) they hold
    content: list[Any]  # the content chunks those entries name ([id, length] pairs)
    size: int  # bytes of content


def _lstat(path: Path) -> list[int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def identity(root: Path, created_at: Any, driver: str) -> dict[str, Any]:
    """What must not have changed for a snapshot to be taken over (the module doc)."""
    ident: dict[str, Any] = {"created_at": str(created_at or ""), "root": _lstat(root),
                             "yaml": _lstat(root / "backup.yaml")}
    if driver == "btrfs":
        ident["subvolume"] = btrfs.subvolume_identity(root)
    return ident


def previous_records(repo: Repository, group: str, backup_id: str | None) -> dict[str, dict[str, Any]]:
    """The snapshot records of the backup ``backup_id`` (the files cache's previous),
    if it is a direct backup of ``group`` that still exists; else none."""
    if not backup_id:
        return {}
    try:
        m = repo.load_manifest(backup_id)
    except (DedupeError, OSError, ValueError):
        return {}
    lxd = m.meta.get("lxd") if isinstance(m.meta, dict) else None
    if m.group != group or not isinstance(lxd, dict) or lxd.get("via") != "direct":
        return {}
    records = lxd.get("snapshot_items")
    if not isinstance(records, dict):
        return {}
    return {name: {**rec, "manifest_items": m.items} for name, rec in records.items() if isinstance(rec, dict)}


def take(repo: Repository, record: dict[str, Any] | None, ident: dict[str, Any], prefix: str) -> Reused | None:
    """The items of a snapshot recorded by the previous backup, if its identity is
    unchanged and they check out (the module doc); None: walk it."""
    if record is None or record.get("id") != ident or ident.get("root") is None:
        return None
    if ident.get("subvolume") == "":  # btrfs could not say: do not guess
        return None
    try:
        a, b = record["items"]
        count, size = int(record["entries"]), int(record["size"])
        refs = [(bytes(c), int(n)) for c, n in record["manifest_items"][a:b]]
    except (KeyError, TypeError, ValueError):
        return None
    # streamed, few steps per item: a snapshot has as many items as files, and holding
    # them all decoded would cost tens of MB
    content: list[Any] = []  # [chunk id, length] pairs, as decoded
    extend = content.extend
    seen = 0
    first = last = ""
    try:
        for item in items.decode_items(read_chunks(repo, refs), "snapshot items"):
            entry = item["e"]
            extend(entry.get("c", ()))
            if not seen:
                first = _path(entry)
            seen += 1
            last = entry["p"]
        last = _path({"p": last})
    except (DedupeError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if seen != count or not count or first != prefix or (count > 1 and not last.startswith(prefix + "/")):
        return None
    return Reused(refs, count, content, size)


def _path(entry: dict[str, Any]) -> str:
    path = entry.get("p")
    return os.fsdecode(path) if isinstance(path, bytes) else str(path)
