"""Trees out of tar and directory backups: entries with their content, a directory
restore, and a PAX tar of a directory backup.

All content chunks are read through one ordered reader (so reads run ahead of the
writer and each pack is read in large sequential ranges); each entry takes its own
chunks from it, and whatever an entry's consumer leaves unread is skipped before
the next entry, so the reader never falls out of step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from dedupe.entries import Entry
from dedupe.repository import Repository
from dedupe.read import WrongBackupKind, iter_items, read_chunks
from dedupe.sinks.directory import RestoreResult, Warn, restore_tree
from dedupe.sinks.pax_writer import write_pax
from repo_format import items, manifest

TREE_KINDS = (manifest.KIND_TAR, manifest.KIND_DIR)


def selected(path: str, paths: list[str] | None) -> bool:
    if not paths:
        return True
    path = path.strip("/")
    return any(path == p or path.startswith(p + "/") or p in ("", ".") for p in (q.strip("/") for q in paths))


def entries_of(repo: Repository, m: manifest.Manifest) -> Iterator[tuple[Entry, int]]:
    """(entry, bytes of non-content data prefix) for each tree entry of a backup."""
    if m.kind not in TREE_KINDS:
        raise WrongBackupKind(f"a {m.kind} backup holds no directory tree; restore it with --to-file or --stdout")
    for item in iter_items(repo, m):
        k = items.kind(item)
        if k == items.ITEM_ENTRY:
            yield Entry.from_item(items.entry_of(item)), 0
        elif k == items.ITEM_TAR_MEMBER:
            yield Entry.from_item(items.entry_of(item)), items.member_data_prefix(item)


def iter_entries(repo: Repository, m: manifest.Manifest, paths: list[str] | None = None) -> Iterator[tuple[Entry, Any]]:
    """Each selected entry with a data source yielding its content (FORMAT.md section 9)."""
    wanted = (e for e, _ in entries_of(repo, m) if selected(e.path, paths))
    chunks = read_chunks(repo, (ref for e in wanted for ref in e.chunks))
    for entry, prefix in entries_of(repo, m):
        if not selected(entry.path, paths):
            continue
        state = {"left": len(entry.chunks)}

        def data(entry: Entry = entry, prefix: int = prefix, state: dict[str, int] = state) -> Iterator[bytes]:
            skip = prefix
            while state["left"]:
                state["left"] -= 1
                piece = next(chunks)
                if skip:
                    cut = min(skip, len(piece))
                    skip -= cut
                    piece = piece[cut:]
                if piece:
                    yield piece

        yield entry, (data if entry.chunks else None)
        while state["left"]:  # the consumer did not read it all: keep the reader in step
            state["left"] -= 1
            next(chunks)


def restore_dir(repo: Repository, m: manifest.Manifest, target: Path, paths: list[str] | None = None,
                on_warning: Warn | None = None, numeric_owner: bool = True) -> RestoreResult:
    return restore_tree(target, iter_entries(repo, m, paths), paths=paths, on_warning=on_warning,
                        numeric_owner=numeric_owner)


def write_tree_tar(repo: Repository, m: manifest.Manifest, out: BinaryIO, backup_id: str = "",
                   progress: Any = None) -> int:
    """A PAX tar of a directory backup (its root entry, path "", is not a member)."""
    return write_pax(out, ((e, d) for e, d in iter_entries(repo, m) if e.path not in ("", ".")))


def list_entries(repo: Repository, m: manifest.Manifest, paths: list[str] | None = None) -> Iterable[Entry]:
    return (e for e, _ in entries_of(repo, m) if selected(e.path, paths))
