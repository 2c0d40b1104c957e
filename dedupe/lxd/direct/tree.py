"""The walk that presents an export tarball's layout: real directories under virtual
prefixes, plus generated files (``backup/index.yaml``, a rewritten ``backup.yaml``).

Each ``Part`` is one member or one tree of the tarball, in the export's order. A tree
is walked by ``dedupe.sources.directory.walk_tree`` (same metadata, same checks, same
files cache keys); its entries are renamed under the prefix, and below ``shifted``
(``rootfs``) their ids unshifted. Generated files go through the same loop as walked
ones (``MemoryFile`` behaves as a walked file), so the files cache and the item
stream treat them alike: their cache key's change token is a hash of the content.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dedupe.entries import DIR, FILE, HARDLINK, Entry
from dedupe.idmap import IdMap
from dedupe.sources.directory import WalkedEntry, walk_tree

Warn = Callable[[str], None]


@dataclass
class MemoryFile:
    """A generated regular file, shaped like a ``WalkedEntry`` for ``backup_walk``."""

    entry: Entry
    content: bytes
    ino: int = 0
    vanished: bool = False
    loaded: bool = True
    ctime_ns: int = field(init=False)

    def __post_init__(self) -> None:
        self.entry.size = len(self.content)
        self.ctime_ns = int.from_bytes(hashlib.blake2b(self.content, digest_size=7).digest(), "big")

    def load(self) -> bool:
        return True

    def read_view(self, take: Callable[[int], memoryview]) -> memoryview:
        return memoryview(self.content)

    def iter_data(self, block_size: int = 1 << 20) -> Iterator[bytes]:
        yield self.content

    def read_dense(self, consume: Callable[[object], None]) -> None:  # pragma: no cover - files are small
        raise NotImplementedError

    def close(self) -> None:
        pass


def generated(path: str, content: bytes, like: Path | None = None, mode: int = 0o644,
              mtime_ns: int = 0) -> MemoryFile:
    """A generated file at ``path``, with the owner, mode and mtime of ``like`` when given."""
    uid = gid = 0
    if like is not None:
        st = like.stat()
        uid, gid, mode, mtime_ns = st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime_ns
    return MemoryFile(Entry(path=path, type=FILE, mode=mode, uid=uid, gid=gid, mtime_ns=mtime_ns), content)


@dataclass
class Tree:
    """A real directory shown as ``prefix`` (its own entry) and everything below it.

    ``replace``: top-level names whose real file is left out, a generated one given in
    its place (right after the root entry: the walk is sorted, and these are the
    ``backup.yaml`` that sorts first); ``shifted``: the top-level directory whose
    entries have ``idmap`` undone (the rest, LXD's own files, is host-owned); ``""``: all.
    ``snapshot``: the name of the LXD snapshot it is, if it is one (``reuse``)."""

    root: Path
    prefix: str
    idmap: IdMap = field(default_factory=IdMap)
    shifted: str = "rootfs"
    replace: dict[str, MemoryFile] = field(default_factory=dict)
    snapshot: str = ""


Part = Tree | MemoryFile


def walk_parts(parts: list[Part] | Part, warn: Warn) -> Iterable[WalkedEntry | MemoryFile]:
    """The entries of the parts in order (of one part: one generator less per entry)."""
    if isinstance(parts, MemoryFile):
        return [parts]
    if isinstance(parts, Tree):
        return _walk_tree(parts, warn)
    return (walked for part in parts for walked in walk_parts(part, warn))


def _walk_tree(tree: Tree, warn: Warn) -> Iterator[WalkedEntry | MemoryFile]:
    prefix = tree.prefix
    below = prefix + "/"
    shifted = tree.shifted + "/"
    skip = set(tree.replace)
    first = True
    for walked in walk_tree(tree.root, on_warning=warn, exclude=(lambda p: p in skip) if skip else None,
                            lazy_files=True, names=False):
        entry = walked.entry
        rel = entry.path
        entry.path = below + rel if rel else prefix
        if entry.type == HARDLINK:
            entry.link = below + entry.link
        if tree.idmap and (not tree.shifted or rel == tree.shifted or rel.startswith(shifted)):
            tree.idmap.unshift_entry(entry)
            if not walked.loaded:  # its xattrs are read if it is opened
                walked.on_load = tree.idmap.unshift_xattrs
        yield walked
        if first:
            first = False
            assert entry.type == DIR
            for name in sorted(tree.replace):
                made = tree.replace[name]
                made.entry.path = below + name
                yield made
