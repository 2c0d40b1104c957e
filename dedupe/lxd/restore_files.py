"""``restore ID --to-instance NAME --path P...``: chosen files and directories of a
backup written into an instance (running or stopped) through LXD's file API.

Paths are as the instance sees them (an LXD instance or volume backup, with
``--snapshot``; see ``dedupe.restore.instance_view``) or entry paths (a tar or
directory backup). Each lands where it was, or with ``target`` inside that directory
as ``cp -r`` puts it (``/etc/nginx`` with target ``/root/old`` gives ``/root/old/nginx``).
Owners and modes are the instance's own. Before anything is written every
destination is looked at: an existing file or symlink (or a non-directory where a
directory goes) is refused unless ``force``, which deletes it first (so its owner and
mode become the backup's; a POST over a file keeps the old ones, docs/lxd.md section
12). Existing directories are kept as they are. Devices and fifos cannot be made through
the API, and it drops setuid, setgid and sticky bits (a warning each); times and
xattrs are not set (the API has no way to); a hard link whose first name is written too gets that
content again.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dedupe import api
from dedupe.entries import DIR, FILE, HARDLINK, SYMLINK, Entry
from dedupe.lxd.api import LXDClient
from dedupe.lxd.errors import LXDObjectExists
from dedupe.repository import Repository
from dedupe.restore.instance_view import View, view_of
from dedupe.restore.tree import check_paths, iter_entries, list_entries

MAX_NAMED = 5  # existing destinations named in the refusal


@dataclass
class FilesResult:
    instance: str
    written: int = 0
    bytes: int = 0
    replaced: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"instance": self.instance, "written": self.written, "bytes": self.bytes,
                "replaced": self.replaced, "warnings": self.warnings}


def _destinations(paths: list[str], view: View | None, target: str | None) -> Callable[[str], str]:
    """Entry path (as the view presents it, or stored) -> absolute path inside the instance."""
    def shown(p: str) -> str:
        return view.shown(p) if view is not None and view.root is not None else "/" + p.strip("/")

    chosen = [shown(view.to_entry(p) if view is not None else p.strip("/")) for p in paths]

    def dest(entry_path: str) -> str:
        where = shown(entry_path)
        if target is None:
            return where
        for c in sorted(chosen, key=len, reverse=True):
            if where == c or where.startswith(c.rstrip("/") + "/"):
                parent = posixpath.dirname(c.rstrip("/")) or "/"
                return posixpath.join(target, posixpath.relpath(where, parent))
        return posixpath.join(target, where.lstrip("/"))

    return dest


def restore_to_instance(repo: Repository, client: LXDClient, info: api.BackupInfo, instance: str,
                        paths: list[str], *, target: str | None = None, force: bool = False,
                        snapshot: str | None = None, project: str | None = None) -> FilesResult:
    m = info.manifest
    view = view_of(m.meta, paths, snapshot)
    check_paths(repo, m, paths, view, f"backup {info.id[:12]}")
    client.instance(instance, project=project)  # LXDNotFound before anything else
    if target is not None:
        target = "/" + target.strip("/")
    dest = _destinations(paths, view, target)

    def planned() -> Iterator[tuple[Entry, str]]:
        for e in list_entries(repo, m, paths, view):
            yield e, dest(e.path)

    existing: dict[str, str] = {}
    conflicts = []
    for e, where in planned():
        kind = client.file_type(instance, where, project)
        if kind is None:
            continue
        existing[where] = kind
        if not (e.type == DIR and kind == "directory"):
            conflicts.append(where)
    if conflicts and not force:
        named = ", ".join(conflicts[:MAX_NAMED]) + (f" and {len(conflicts) - MAX_NAMED} more"
                                                    if len(conflicts) > MAX_NAMED else "")
        raise LXDObjectExists(f"instance {instance}: {named} exist(s); --force replaces them")
    result = FilesResult(instance)
    if target is not None:
        _make_parents(client, instance, target + "/x", project)
    else:
        for p in {posixpath.dirname(dest(view.to_entry(q) if view is not None else q.strip("/"))) for q in paths}:
            _make_parents(client, instance, p + "/x", project)
    written: dict[str, str] = {}  # stored path -> where its content went (for hard links)
    for e, data in iter_entries(repo, m, paths, view):
        where = dest(e.path)
        if where in existing and not (e.type == DIR and existing[where] == "directory"):
            client.delete_file(instance, where, project)
            result.replaced += 1
        if e.type == DIR:
            if existing.get(where) != "directory":
                client.put_file(instance, where, "directory", b"", e.uid, e.gid, e.mode, project)
        elif e.type == FILE:
            body = data() if data is not None else b""
            client.put_file(instance, where, "file", body, e.uid, e.gid, e.mode, project)
            result.bytes += e.size
            written[e.path] = where
        elif e.type == SYMLINK:
            client.put_file(instance, where, "symlink", e.link.encode("utf-8", "surrogateescape"), e.uid, e.gid,
                            0o777, project)
        elif e.type == HARDLINK and e.link in written:
            client.put_file(instance, where, "file", client.read_file(instance, written[e.link], project),
                            e.uid, e.gid, e.mode, project)
        else:
            what = "a hard link to a file not restored" if e.type == HARDLINK else "a device or fifo"
            result.warnings.append(f"{where}: {what}, which LXD's file API cannot create; left out")
            continue
        if e.mode & 0o7000 and e.type != SYMLINK:
            result.warnings.append(f"{where}: mode {e.mode:04o} written as {e.mode & 0o777:04o} "
                                   "(LXD's file API drops setuid, setgid and sticky bits)")
        result.written += 1
    return result


def _make_parents(client: LXDClient, instance: str, path: str, project: str | None) -> None:
    """Create the missing directories above ``path`` (root-owned, 0755), as mkdir -p."""
    parts = [p for p in posixpath.dirname(path).split("/") if p]
    missing = []
    for n in range(len(parts), 0, -1):
        here = "/" + "/".join(parts[:n])
        if client.file_type(instance, here, project) is not None:
            break
        missing.append(here)
    for here in reversed(missing):
        client.put_file(instance, here, "directory", b"", 0, 0, 0o755, project)
