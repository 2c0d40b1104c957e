"""Directory-tree backups: a walk of the tree, file contents chunked per file.

Entries are stored as ``e`` items (FORMAT.md section 9.2) in the walk's
deterministic order, so unchanged parts of a tree give unchanged item chunks and
deduplicate between backups. Unchanged files are not even read when the files
cache knows them.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dedupe.buffers import ReadArena
from dedupe.entries import FILE
from dedupe.backup.files_cache import FilesCache, Refs, head
from dedupe.sources.directory import WalkedEntry, walk_tree
from dedupe.sources.excludes import path_filter
from repo_format import items

if TYPE_CHECKING:  # the engine, named in type hints only (sources sit below it)
    from dedupe.backup.session import BackupResult, BackupSession

VIEW_SIZE = 8 << 20  # files up to this size are read whole, into reused buffers, and cut at once
PACK_CACHE_EVERY = 4096  # files read between packings of their files cache records


def backup_dir(session: BackupSession, root: Path, *, files_cache: FilesCache | None = None,
               one_file_system: bool = False, excludes: Sequence[str] = (),
               exclude_caches: bool = False) -> BackupResult:
    """``excludes``: patterns of paths to leave out; ``exclude_caches``: leave out the
    contents of cache directories (``dedupe.sources.excludes``). Both are recorded in
    the manifest's ``meta``."""
    warnings: list[str] = []
    walk = walk_tree(root, one_file_system=one_file_system, on_warning=warnings.append,
                     exclude=path_filter(excludes), exclude_caches=exclude_caches, lazy_files=files_cache is not None)
    total = backup_walk(session, walk, files_cache)
    if files_cache is not None:
        files_cache.walk_done()
    meta: dict[str, object] = {"root": str(root)}
    if excludes:
        meta["excludes"] = list(excludes)
    if exclude_caches:
        meta["exclude_caches"] = True
    result = session.commit(total, None, meta)
    result.warnings = warnings
    if files_cache is not None and (failed := files_cache.save()):
        result.warnings.append(failed)
    return result


def backup_walk(session: BackupSession, walk: Iterable[WalkedEntry], files_cache: FilesCache | None) -> int:
    """Store the entries of a walk (content through the files cache); returns the
    bytes of content they hold. Shared with walks that present other layouts
    (``dedupe.lxd.direct``). A file the walk did not open (``loaded`` false) is opened
    only when the files cache does not know it: a hit gives its item as the previous
    backup stored it (``FilesCache.lookup_item``), or its chunks, sparse map and xattrs.

    Unchanged files' items wait in ``_Pending`` (up to ``PENDING_MAX`` entries, in walk
    order) so that their chunks are looked up in the index in one vectorised search;
    anything else (a file to read) writes them first. A waiting file whose chunks are
    gone (gc) is read then, as a file the files cache did not know."""
    total = 0
    lookup_item = files_cache.lookup_item if files_cache is not None else None
    pending = _Pending(session, files_cache)
    for walked in walk:
        entry = walked.entry
        # Access and change times are not kept: reading a tree changes its atimes, and
        # neither can be restored as such; leaving them out lets an unchanged tree's
        # metadata deduplicate whole. (The files cache keeps ctime for itself.)
        entry.atime_ns = entry.ctime_ns = None
        if entry.type != FILE:
            pending.items.append(items.entry_item(entry.to_item()))
            continue
        if lookup_item is not None and not walked.loaded:
            # the fast way for an unchanged file: its item as stored last time, as bytes
            try:
                expect = head((walked.ino, entry.size, entry.mtime_ns, walked.ctime_ns),
                              (entry.mode, entry.uid, entry.gid, entry.uname, entry.gname))
            except struct.error:
                expect = b""
            got = lookup_item(entry.path, expect) if expect else None
            if got is not None:
                pending.items.append((walked, got[0], got[1]))
                pending.refs += got[0]
                total += entry.size
                if len(pending.items) >= PENDING_MAX:
                    total -= pending.flush()
                continue
        total -= pending.flush()
        total += pending.store_file(walked)
    total -= pending.flush()
    return total


PENDING_MAX = 2048  # entries waiting for one index search


class _Pending:
    """Items waiting to be written, in walk order: item maps, and unchanged files as
    ``(walked, refs, encoded item)``; ``refs`` all their chunk refs."""

    def __init__(self, session: BackupSession, files_cache: FilesCache | None) -> None:
        self.session = session
        self.files_cache = files_cache
        self.items: list[dict[str, Any] | tuple[WalkedEntry, Refs, bytes]] = []
        self.refs: Refs = []
        self.arena = ReadArena(VIEW_SIZE)
        self.remembered = 0

    def flush(self) -> int:
        """Write what waits; returns the bytes of content of waiting files that vanished
        when they had to be read after all."""
        if not self.items:
            return 0
        session, cache = self.session, self.files_cache
        add_item, add_encoded = session.add_item, session.add_encoded_item
        waiting, self.items = self.items, []
        refs, self.refs = self.refs, []
        everything_there = session.reuse_refs(refs)  # the usual case: one search for all
        lost = 0
        for x in waiting:
            if type(x) is not tuple:
                add_item(x)  # type: ignore[arg-type]
                continue
            walked, file_refs, encoded = x  # type: ignore[misc]
            entry = walked.entry
            assert cache is not None
            if everything_there or session.reuse_refs(file_refs):
                cache.took(entry.path)
                add_encoded(encoded)
                continue
            # a chunk is gone from the repository (gc): read the file again, with the
            # sparse map and xattrs its record holds (its ctime is unchanged)
            hit = cache.lost(entry.path, (walked.ino, entry.size, entry.mtime_ns, walked.ctime_ns))
            entry.xattrs = hit.xattrs
            entry.sparse = [(s[0], s[1]) for s in hit.sparse] if hit.sparse is not None else None
            size = entry.size
            lost += size - self._read(walked, size)
        return lost

    def store_file(self, walked: WalkedEntry) -> int:
        """A regular file nothing waits for: taken over from the files cache or read.
        Returns the bytes of content it holds (0 when it vanished)."""
        session, cache = self.session, self.files_cache
        entry = walked.entry
        key = (walked.ino, entry.size, entry.mtime_ns, walked.ctime_ns)
        hit = cache.lookup(entry.path, key, False) if cache is not None else None
        if hit is not None and not session.reuse_refs(hit.refs):
            hit = None  # a chunk is gone from the repository (gc): read the file again
        if hit is not None and not walked.loaded:
            entry.xattrs = hit.xattrs
            entry.sparse = [(s[0], s[1]) for s in hit.sparse] if hit.sparse is not None else None
        elif not walked.load():
            return 0  # vanished since it was listed
        elif hit is not None and (hit.sparse != ([list(s) for s in entry.sparse] if entry.sparse is not None
                                                 else None) or hit.xattrs != entry.xattrs):
            hit = None  # opened by the walk: its own sparse map and xattrs decide
        if hit is not None:
            walked.close()
            item = entry.to_item()
            items.set_entry_chunks(item, hit.refs)
            session.add_item(items.entry_item(item))
            return entry.size
        return self._read(walked, key[1])

    def _read(self, walked: WalkedEntry, listed_size: int) -> int:
        """Read a file's content and write its item (remembered in the files cache);
        returns its size as read (0 when it vanished)."""
        session, cache = self.session, self.files_cache
        entry = walked.entry
        if entry.size <= VIEW_SIZE and entry.sparse is None:
            refs = session.store_view(walked.read_view(self.arena.take))
        else:
            refs = []
            walked.read_dense(functools.partial(session.store_file, refs=refs))
        if walked.vanished:
            return 0
        item = entry.to_item()  # after the read: it may have updated size and sparse map
        items.set_entry_chunks(item, refs)
        full = items.entry_item(item)
        if cache is not None and entry.size == listed_size:
            cache.remember(entry.path, (walked.ino, entry.size, entry.mtime_ns, walked.ctime_ns),
                           (entry.mode, entry.uid, entry.gid, entry.uname, entry.gname), full)
            self.remembered += 1
            if self.remembered % PACK_CACHE_EVERY == 0:
                session.after_items(cache.pack_later())
        session.add_item(full)
        return entry.size
