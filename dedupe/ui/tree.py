"""A tar or directory backup as a browsable tree: the children of each directory, each
entry's content source, and for LXD backups the roots a user thinks in (the
container's ``/``, each snapshot's, a volume's) instead of the tarball's layout."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from dedupe import api

@dataclass
class Tree:
    entries: dict[str, tuple[Any, int]] = field(default_factory=dict)  # path -> (Entry, data prefix)
    children: dict[str, list[str]] = field(default_factory=dict)  # directory path -> child paths
    roots: list[tuple[str, str]] = field(default_factory=list)  # (label, path): where browsing starts

    @classmethod
    def build(cls, pairs: Any) -> Tree:
        t = cls()
        for entry, prefix in pairs:
            t.entries[entry.path.strip("/")] = (entry, prefix)
        linked: set[str] = set()  # every path already listed under its parent
        for path in list(t.entries):
            while path and path not in linked:  # a tar may name a file without its directories
                linked.add(path)
                t.children.setdefault(posixpath.dirname(path), []).append(path)
                path = posixpath.dirname(path)
        for kids in t.children.values():
            kids.sort()
        for path in sorted(p for p in set(t.entries) | set(t.children) if p.startswith("backup/")):
            found = api.lxd_root(path)
            if found is not None and found[0] == path:
                t.roots.append((found[1], path))
        return t

    def is_dir(self, path: str) -> bool:
        if path in self.children or path == "":
            return True
        e = self.entries.get(path)
        return e is not None and e[0].type == "d"

    def listing(self, path: str) -> list[tuple[str, Any]]:
        """(path, Entry or None for an implied directory) of each child, directories first."""
        kids = self.children.get(path, [])
        rows = [(p, self.entries.get(p, (None, 0))[0]) for p in kids]
        rows.sort(key=lambda r: (not self.is_dir(r[0]), r[0]))
        return rows

    def file(self, path: str) -> tuple[Any, int] | None:
        """The entry holding the content of the file at ``path`` (a hardlink's target)."""
        found = self.entries.get(path.strip("/"))
        seen = 0
        while found is not None and found[0].type == "h" and seen < 40:
            found, seen = self.entries.get(found[0].link.strip("/")), seen + 1
        if found is None or found[0].type != "f":
            return None
        return found

    def root_of(self, path: str) -> tuple[str, str] | None:
        """The LXD root (label, root path) ``path`` lies in, if any."""
        best = None
        for label, root in self.roots:
            if (path == root or path.startswith(root + "/")) and (best is None or len(root) > len(best[1])):
                best = (label, root)
        return best
