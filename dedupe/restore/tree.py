"""Trees out of tar and directory backups: entries with their content, a directory
restore, and a PAX tar of a directory backup.

All content chunks are read through one ordered reader (so reads run ahead of the
writer and each pack is read in large sequential ranges); each entry takes its own
chunks from it, and whatever an entry's consumer leaves unread is skipped before
the next entry, so the reader never falls out of step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from dedupe.entries import Entry
from dedupe.repository import Repository
from dedupe.read import WrongBackupKind, iter_items, read_chunks
from dedupe.restore import instance_view
from dedupe.restore.instance_view import Matcher, View
from dedupe.sinks.directory import RestoreResult, TarNames, Warn, restore_tree
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


def _noted(repo: Repository, m: manifest.Manifest, view: View | None) -> Iterator[tuple[Entry, int]]:
    for e, prefix in entries_of(repo, m):
        if view is not None:
            view.note(e)
        yield e, prefix


def _selector(paths: list[str] | None, view: View | None) -> Callable[[str], bool]:
    if view is None or not paths:
        return lambda path: selected(path, paths)
    wanted = [view.to_entry(p) for p in paths]
    return lambda path: instance_view.selected(path, wanted)


def iter_entries(repo: Repository, m: manifest.Manifest, paths: list[str] | None = None,
                 view: View | None = None) -> Iterator[tuple[Entry, Any]]:
    """Each selected entry with a data source yielding its content (FORMAT.md section 9).
    With a ``view`` (an LXD backup), ``paths`` are in its terms and owners are mapped;
    the entries keep their stored paths."""
    chosen = _selector(paths, view)
    wanted = (e for e, _ in entries_of(repo, m) if chosen(e.path))
    chunks = read_chunks(repo, (ref for e in wanted for ref in e.chunks))
    for entry, prefix in _noted(repo, m, view):
        if not chosen(entry.path):
            continue
        if view is not None:
            entry = view.owners(entry)
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
                on_warning: Warn | None = None, numeric_owner: bool = True, view: View | None = None,
                where: str = "the backup", no_special: bool = False) -> RestoreResult:
    """Restore the tree (or ``paths``) into ``target``. A path that matches nothing is
    ``PathNotFound``, found by a pass over the entries before anything is written.
    With a ``view`` whose root is chosen, the paths below that root land in ``target``.
    ``no_special``: no device nodes, setuid/setgid bits or file capabilities (restore_tree)."""
    if paths or (view is not None and view.root is not None):
        check_paths(repo, m, paths or [], view, where)
    if view is None and paths:  # a leading / names the tree's root; "/" or "." all of it
        paths = [p.strip("/") for p in paths]
        paths = None if any(p in ("", ".") for p in paths) else paths
    entries = iter_entries(repo, m, paths, view)
    sink_paths = paths
    if view is not None and view.root is not None:
        entries = ((view.for_restore(e), d) for e, d in entries)
        rel = [view.relative(view.to_entry(p)) for p in paths or [""]]
        sink_paths = None if "" in rel else rel
    return restore_tree(target, entries, paths=sink_paths, on_warning=on_warning, numeric_owner=numeric_owner,
                        no_special=no_special)


def match_paths(repo: Repository, m: manifest.Manifest, paths: list[str], view: View | None) -> Matcher | None:
    """Which of ``paths`` match entries (one pass over the metadata), or None when
    there is nothing to look for."""
    wanted = [view.to_entry(p) for p in paths] if view is not None else [p.strip("/") for p in paths]
    if view is not None and view.root is not None and not paths:
        wanted, paths = [view.root], ["/"]
    if not wanted:
        return None
    matcher = Matcher(list(paths), wanted, view)
    for e, _ in entries_of(repo, m):
        matcher.see(e.path)
    return matcher


def check_paths(repo: Repository, m: manifest.Manifest, paths: list[str], view: View | None,
                where: str = "the backup") -> None:
    """``PathNotFound`` naming each path that matches no entry, with its nearest existing parent."""
    matcher = match_paths(repo, m, paths, view)
    if matcher is not None:
        matcher.check(where)


def write_tree_tar(repo: Repository, m: manifest.Manifest, out: BinaryIO, backup_id: str = "",
                   progress: Any = None) -> int:
    """A PAX tar of a directory backup (its root entry, path "", is not a member), its
    names held to the rules of ``--to-dir`` (``TarNames``: a hostile one is refused, 51)."""
    names = TarNames()

    def checked() -> Iterator[tuple[Entry, Any]]:
        for e, d in iter_entries(repo, m):
            if e.path not in ("", "."):
                names.check(e)
                yield e, d

    return write_pax(out, checked())


def list_entries(repo: Repository, m: manifest.Manifest, paths: list[str] | None = None,
                 view: View | None = None) -> Iterable[Entry]:
    """The selected entries' metadata; with a ``view``, owners mapped (paths as stored)."""
    chosen = _selector(paths, view)
    for e, _ in _noted(repo, m, view):
        if chosen(e.path):
            yield view.owners(e) if view is not None else e
