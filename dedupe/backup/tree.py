"""Directory-tree backups: a walk of the tree, file contents chunked per file.

Entries are stored as ``e`` items (FORMAT.md section 9.2) in the walk's
deterministic order, so unchanged parts of a tree give unchanged item chunks and
deduplicate between backups. Unchanged files are not even read when the files
cache knows them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dedupe.buffers import ReadArena
from dedupe.entries import FILE
from dedupe.backup.files_cache import FilesCache
from dedupe.sources.directory import walk_tree
from dedupe.sources.excludes import path_filter
from repo_format import items

if TYPE_CHECKING:  # the engine, named in type hints only (sources sit below it)
    from dedupe.backup.session import BackupResult, BackupSession

VIEW_SIZE = 8 << 20  # files up to this size are read whole, into reused buffers, and cut at once


def backup_dir(session: BackupSession, root: Path, *, files_cache: FilesCache | None = None,
               one_file_system: bool = False, excludes: Sequence[str] = (),
               exclude_caches: bool = False) -> BackupResult:
    """``excludes``: patterns of paths to leave out; ``exclude_caches``: leave out the
    contents of cache directories (``dedupe.sources.excludes``). Both are recorded in
    the manifest's ``meta``."""
    warnings: list[str] = []
    total = 0
    arena = ReadArena(VIEW_SIZE)
    exclude = path_filter(excludes)
    for walked in walk_tree(root, one_file_system=one_file_system, on_warning=warnings.append,
                            exclude=exclude, exclude_caches=exclude_caches):
        entry = walked.entry
        # Access and change times are not kept: reading a tree changes its atimes, and
        # neither can be restored as such; leaving them out lets an unchanged tree's
        # metadata deduplicate whole. (The files cache keeps ctime for itself.)
        entry.atime_ns = entry.ctime_ns = None
        item = entry.to_item()
        if entry.type == FILE:
            key = (walked.ino, entry.size, entry.mtime_ns, walked.ctime_ns)
            refs = files_cache.lookup(entry.path, key) if files_cache is not None else None
            if refs is not None and files_cache is not None and files_cache.sparse_of(entry.path) == (
                    [list(s) for s in entry.sparse] if entry.sparse is not None else None):
                walked.close()
                items.set_entry_chunks(item, refs)
                session.note_reused(refs)
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
                    files_cache.remember(entry.path, key, refs,
                                         [list(s) for s in entry.sparse] if entry.sparse is not None else None)
            total += entry.size
        session.add_item(items.entry_item(item))
    meta: dict[str, object] = {"root": str(root)}
    if excludes:
        meta["excludes"] = list(excludes)
    if exclude_caches:
        meta["exclude_caches"] = True
    result = session.commit(total, None, meta)
    result.warnings = warnings
    if files_cache is not None:
        files_cache.save()
    return result
