"""One backup as a directory tree for the mount: tar and directory backups as their
trees, LXD instance and volume backups as ``rootfs/`` (``volume/``) with
``snapshots/<name>/`` beside it and the instance's own owners, stream backups as one
file named after the last part of their group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dedupe.entries import DIR, FILE, HARDLINK, Entry
from dedupe.mount.content import Content
from dedupe.read import iter_items
from dedupe.repository import Repository
from dedupe.restore.instance_view import View, view_of
from dedupe.restore.tree import entries_of
from repo_format import items, manifest


@dataclass(slots=True)
class Node:
    entry: Entry
    content: Content | None = None
    children: dict[str, Node] | None = None
    next_file: Node | None = None  # the next file in the same directory (read-ahead across files)


@dataclass
class BackupTree:
    root: Node
    entries: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def lookup(self, parts: list[str]) -> Node | None:
        node = self.root
        for part in parts:
            if node.children is None:
                return None
            nxt = node.children.get(part)
            if nxt is None:
                return None
            node = nxt
        return node


def _dir(path: str, like: Entry | None = None) -> Node:
    e = Entry(path, DIR, mode=0o755, mtime_ns=like.mtime_ns if like else 0)
    return Node(e, None, {})


class _Builder:
    def __init__(self, root_entry: Entry) -> None:
        self.tree = BackupTree(Node(root_entry, None, {}))
        self.files: dict[str, Node] = {}  # shown path -> file node, for hard links
        self.last_file: dict[int, Node] = {}  # id(directory node) -> its last file so far

    def add(self, path: str, e: Entry, prefix: int) -> None:
        parts = [p for p in path.split("/") if p]
        self.tree.entries += 1
        if not parts:
            if e.type == DIR:
                self.tree.root.entry = e
            return
        node = self.tree.root
        for part in parts[:-1]:
            assert node.children is not None
            nxt = node.children.get(part)
            if nxt is None or nxt.children is None:
                nxt = node.children[part] = _dir(part, e)
            node = nxt
        if node.children is None:
            return
        name = parts[-1]
        if e.type == DIR:
            old = node.children.get(name)
            node.children[name] = Node(e, None, old.children if old is not None and old.children is not None else {})
        elif e.type == HARDLINK:
            target = self.files.get(e.link.strip("/"))
            if target is not None:
                node.children[name] = Node(target.entry.replace(path=e.path), target.content)
        else:
            content = Content(e.chunks, e.size, prefix, e.sparse) if e.type == FILE else None
            n = node.children[name] = Node(e, content)
            if e.type == FILE:
                self.files["/".join(parts)] = n
                prev = self.last_file.get(id(node))
                if prev is not None:
                    prev.next_file = n
                self.last_file[id(node)] = n


def _lxd_place(view: View, path: str) -> str | None:
    """Where an entry of an LXD backup goes in the mount, or None (LXD's own files)."""
    live = view.base(None)
    if path == live or path.startswith(live + "/"):
        return ("volume" if view.kind == "volume" else "rootfs") + path[len(live):]
    for snap in view.snapshots:
        base = view.base(snap)
        if path == base or path.startswith(base + "/"):
            return f"snapshots/{snap}" + path[len(base):]
    return None


def build(repo: Repository, m: manifest.Manifest) -> BackupTree:
    top = Entry("", DIR, mode=0o755, mtime_ns=m.time_ns)
    b = _Builder(top)
    if m.kind == manifest.KIND_STREAM:
        refs = [(bytes(c), int(n)) for item in iter_items(repo, m) for c, n in items.chunk_refs(item)]
        name = m.group.rstrip("/").rsplit("/", 1)[-1] or "stream"
        b.add(name, Entry(name, FILE, mode=0o644, mtime_ns=m.time_ns, size=m.size, chunks=refs), 0)
        return b.tree
    view = view_of(m.meta)
    if view is None:
        for e, prefix in entries_of(repo, m):
            b.add(e.path, e, prefix)
        return b.tree
    assert b.tree.root.children is not None
    b.tree.root.children["rootfs" if view.kind != "volume" else "volume"] = _dir("rootfs", top)
    if view.snapshots:
        b.tree.root.children["snapshots"] = _dir("snapshots", top)
    for e, prefix in entries_of(repo, m):
        view.note(e)
        place = _lxd_place(view, e.path)
        if place is None:
            continue
        e = view.owners(e)
        if e.type == HARDLINK:
            e = e.replace(link=_lxd_place(view, e.link.strip("/")) or e.link)
        b.add(place, e, prefix)
    return b.tree
