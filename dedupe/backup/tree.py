"""Directory-tree backups: a walk of the tree, file contents chunked per file.

Entries are stored as ``e`` items (FORMAT.md section 9.2) in the walk's
deterministic order, so unchanged parts of a tree give unchanged item chunks and
deduplicate between backups. Unchanged files are not even read when the files
cache knows them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dedupe.buffers import ReadArena
from dedupe.entries import FILE
from dedupe.backup.files_cache import FilesCache
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
    only when the files cache does not know it: a hit gives its chunks, sparse map and
    xattrs as the previous backup stored them."""
    total = 0
    arena = ReadArena(VIEW_SIZE)
    add_item, reuse_refs = session.add_item, session.reuse_refs
    lookup = files_cache.lookup if files_cache is not None else None
    remembered = 0
    for walked in walk:
        entry = walked.entry
        # Access and change times are not kept: reading a tree changes its atimes, and
        # neither can be restored as such; leaving them out lets an unchanged tree's
        # metadata deduplicate whole. (The files cache keeps ctime for itself.)
        entry.atime_ns = entry.ctime_ns = None
        if entry.type != FILE:
            add_item(items.entry_item(entry.to_item()))
            continue
        key = (walked.ino, entry.size, entry.mtime_ns, walked.ctime_ns)
        hit = lookup(entry.path, key, False) if lookup is not None else None
        if hit is not None and not reuse_refs(hit.refs):
            hit = None  # a chunk is gone from the repository (gc): read the file again
        if hit is not None and not walked.loaded:
            entry.xattrs = hit.xattrs
            entry.sparse = [(s[0], s[1]) for s in hit.sparse] if hit.sparse is not None else None
        elif not walked.load():
            continue  # vanished since it was listed
        elif hit is not None and (hit.sparse != ([list(s) for s in entry.sparse] if entry.sparse is not None
                                                 else None) or hit.xattrs != entry.xattrs):
            hit = None  # opened by the walk: its own sparse map and xattrs decide
        item = entry.to_item()
        if hit is not None:
            walked.close()
            items.set_entry_chunks(item, hit.refs)
        else:
            if entry.sparse is not None:
                refs = session.store_blocks(walked.iter_data())
            elif entry.size <= VIEW_SIZE:
                refs = session.store_view(walked.read_view(arena.take))
            else:
                refs = []
                walked.read_dense(functools.partial(session.store_file, refs=refs))
            if walked.vanished:
                continue
            if entry.size != key[1] or entry.sparse is not None:
                item = entry.to_item()  # the read may have updated size and sparse map
            items.set_entry_chunks(item, refs)
            if files_cache is not None and entry.size == key[1]:
                files_cache.remember(entry.path, (walked.ino, entry.size, entry.mtime_ns, walked.ctime_ns), refs,
                                     [list(s) for s in entry.sparse] if entry.sparse is not None else None,
                                     entry.xattrs)
                remembered += 1
                if remembered % PACK_CACHE_EVERY == 0:
                    session.after_items(files_cache.pack_later())
        total += entry.size
        add_item(items.entry_item(item))
    return total
