"""``ls`` and ``diff``: what a tree backup holds, and what changed between two."""

from __future__ import annotations

import datetime as dt
import stat
from dataclasses import dataclass
from typing import Any, Iterator

import blake3

from dedupe.entries import Entry
from dedupe.repository import Repository
from dedupe.restore.instance_view import View
from dedupe.restore.tree import check_paths, list_entries, match_paths
from repo_format import manifest

_TYPE_BITS = {"f": stat.S_IFREG, "d": stat.S_IFDIR, "l": stat.S_IFLNK, "h": stat.S_IFREG, "c": stat.S_IFCHR,
              "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def entry_json(e: Entry) -> dict[str, Any]:
    j: dict[str, Any] = {"path": e.path, "type": e.type, "mode": e.mode, "uid": e.uid, "gid": e.gid,
                         "user": e.uname, "group": e.gname, "size": e.size, "mtime_ns": e.mtime_ns}
    if e.link:
        j["link"] = e.link
    if e.rdev is not None:
        j["rdev"] = list(e.rdev)
    if e.xattrs:
        j["xattrs"] = sorted(e.xattrs)
    if e.sparse is not None:
        j["sparse"] = True
    return j


def entry_line(e: Entry) -> str:
    mode = stat.filemode(_TYPE_BITS.get(e.type, 0) | e.mode)
    if e.type == "h":
        mode = "h" + mode[1:]
    owner = f"{e.uname or e.uid}/{e.gname or e.gid}"
    size = f"{e.rdev[0]},{e.rdev[1]}" if e.rdev is not None else str(e.size)
    when = dt.datetime.fromtimestamp(e.mtime_ns / 1e9).strftime("%Y-%m-%d %H:%M")
    name = e.path or "."
    if e.type == "l":
        name += f" -> {e.link}"
    elif e.type == "h":
        name += f" link to {e.link}"
    return f"{mode} {owner:<17} {size:>12} {when} {name}"


def ls(repo: Repository, m: manifest.Manifest, paths: list[str] | None = None,
       view: View | None = None, where: str = "the backup") -> Iterator[Entry]:
    """The entries (below ``paths``); with a ``view``, as the LXD instance sees them.
    A path that matches nothing is ``PathNotFound``."""
    check_paths(repo, m, paths or [], view, where)
    entries = list_entries(repo, m, paths, view)
    return (view.present(e) for e in entries) if view is not None else iter(entries)


@dataclass
class Change:
    path: str
    what: str  # "added", "removed", "changed"
    old_size: int | None
    new_size: int | None
    fields: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "change": self.what, "old_size": self.old_size, "new_size": self.new_size,
                "fields": self.fields}


def _fingerprint(e: Entry) -> dict[str, Any]:
    content = blake3.blake3(b"".join(c[0] for c in e.chunks)).digest(length=16) if e.chunks else b""
    return {"type": e.type, "mode": e.mode, "owner": (e.uid, e.gid), "size": e.size, "mtime": e.mtime_ns,
            "link": e.link, "rdev": e.rdev, "xattrs": sorted(e.xattrs.items()), "content": content,
            "sparse": e.sparse}


def diff(repo: Repository, old: manifest.Manifest, new: manifest.Manifest, paths: list[str] | None = None,
         views: tuple[View | None, View | None] = (None, None), where: tuple[str, str] = ("old", "new")) -> list[Change]:
    """Paths added, removed and changed (with the fields that differ), in path order.

    Content is compared by chunk ids, so a tar and a directory backup of the same files
    compare equal as long as the content chunks match. With ``paths``, only what is
    below them; a path in neither backup is ``PathNotFound``. With views (LXD backups),
    paths and owners as the instance sees them."""
    if paths:  # each path must be in one of the two
        before, after = match_paths(repo, old, paths, views[0]), match_paths(repo, new, paths, views[1])
        if before is not None and after is not None:
            after.check(f"{where[0]} or {where[1]}", before.found_given())

    def listed(m: manifest.Manifest, view: View | None) -> Iterator[Entry]:
        entries = list_entries(repo, m, paths, view)
        return (view.present(e) for e in entries) if view is not None else iter(entries)

    before = {e.path: (_fingerprint(e), e.size) for e in listed(old, views[0])}
    changes = []
    seen = set()
    for e in listed(new, views[1]):
        seen.add(e.path)
        fp = _fingerprint(e)
        prev = before.get(e.path)
        if prev is None:
            changes.append(Change(e.path, "added", None, e.size, []))
        else:
            differ = [k for k in fp if fp[k] != prev[0][k]]
            if differ:
                changes.append(Change(e.path, "changed", prev[1], e.size, differ))
    for path, (_fp, size) in before.items():
        if path not in seen:
            changes.append(Change(path, "removed", size, None, []))
    changes.sort(key=lambda c: c.path)
    return changes
