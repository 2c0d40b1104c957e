"""LXD instance and volume backups as the instance sees them: paths and owners.

An LXD backup (``meta["lxd"]`` kind ``instance`` or ``volume``; a tar of LXD's export,
or a directory-tree backup with the same entry paths) keeps the instance's root file
system under ``backup/container/rootfs`` (a snapshot's under
``backup/snapshots/<name>/rootfs``; a volume's under ``backup/volume`` and
``backup/volume-snapshots/<name>``). Users name files as the instance does
(``/etc/nginx/nginx.conf``); this module maps those names to entry paths and back.

Owners: LXD 5.0.2 exports an unprivileged container's files with the ids they have on
disk, shifted by the instance's idmap (``/root`` of container root is 100000 in the
tar); a direct read may store them unshifted. Each root (the rootfs, each snapshot's)
is judged by its own top directory, owned by the instance's root: at the idmap's host
id of 0 the root is shifted and its ids are mapped back (host id ``Hostid + k`` is
instance id ``Nsid + k``); at 0 it is stored unshifted already. ``host_ids=True``
gives the ids as the host's disk holds them instead (shifting unshifted roots).

Only entry paths and ``meta["lxd"]`` are used, never tar specifics.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dedupe.entries import Entry
from dedupe.errors import DedupeError
from dedupe.idmap import IdMap



class PathNotFound(DedupeError):
    """A path given to ``ls``, ``diff`` or ``restore --path`` matches no entry."""

    exit_code = 33


class UnknownSnapshot(DedupeError):
    """``--snapshot NAME`` names no snapshot of that backup."""

    exit_code = 34


def _lxd_meta(meta: dict[str, Any]) -> dict[str, Any] | None:
    lxd = meta.get("lxd")
    if isinstance(lxd, dict) and lxd.get("kind") in ("instance", "volume"):
        return lxd
    return None


def is_lxd_tree(meta: dict[str, Any]) -> bool:
    return _lxd_meta(meta) is not None


# The roots of an LXD backup's entry paths: (pattern of the root's path and what lies below
# it, label, the side: an instance's or a volume's). One table for the restores and ls here
# and for the web UI's tree (through dedupe.api.lxd_root); a VM's disk is a root to browse
# to in the UI, with no owners to map.
_ROOTS = (
    (re.compile(r"backup/container/rootfs(?=/|$)"), "container /", "instance"),
    (re.compile(r"backup/snapshots/([^/]+)/rootfs(?=/|$)"), "snapshot {0} /", "instance"),
    (re.compile(r"backup/virtual-machine(?=/|$)"), "virtual machine", "vm"),
    (re.compile(r"backup/volume(?=/|$)"), "volume /", "volume"),
    (re.compile(r"backup/volume-snapshots/([^/]+)(?=/|$)"), "volume snapshot {0} /", "volume"),
)


def lxd_root(path: str) -> tuple[str, str, str] | None:
    """The LXD root an entry path lies in (or is): (root path, label, side), side
    ``instance``, ``vm`` or ``volume``; None outside every root."""
    for pattern, label, side in _ROOTS:
        found = pattern.match(path)
        if found:
            return found.group(0), label.format(*found.groups()), side
    return None


@dataclass
class View:
    """How one LXD backup's entries are shown: which root, and the owners' mapping.

    ``root`` is the entry path of the chosen root (``backup/container/rootfs``), or
    None for the raw entry paths. ``idmap`` is what the backup's record says."""

    kind: str
    root: str | None
    idmap: IdMap
    host_ids: bool
    snapshots: list[str]
    _shifted: dict[str, bool] = field(default_factory=dict)

    # --- paths -------------------------------------------------------------------------

    def base(self, snapshot: str | None) -> str:
        if self.kind == "volume":
            return f"backup/volume-snapshots/{snapshot}" if snapshot else "backup/volume"
        return f"backup/snapshots/{snapshot}/rootfs" if snapshot else "backup/container/rootfs"

    def to_entry(self, path: str) -> str:
        """A user's path as an entry path: raw paths (``backup/...``) stay as they are."""
        if self.root is None:
            return path.strip("/")
        rel = "/".join(p for p in path.split("/") if p not in ("", "."))
        return f"{self.root}/{rel}" if rel else self.root

    def shown(self, entry_path: str) -> str:
        """An entry path as the user sees it (``/etc/x`` below the root)."""
        if self.root is None:
            return entry_path
        if entry_path == self.root:
            return "/"
        return "/" + entry_path[len(self.root) + 1:] if entry_path.startswith(self.root + "/") else entry_path

    def shown_link(self, e: Entry) -> str:
        """A hard link's target in the same terms as its path (symlinks are verbatim)."""
        return self.shown(e.link) if e.type == "h" and self.root is not None else e.link

    def relative(self, entry_path: str) -> str:
        """The entry path below the root, for a restore into a directory ("" is the root)."""
        if self.root is None:
            return entry_path
        if entry_path == self.root:
            return ""
        return entry_path[len(self.root) + 1:]

    # --- owners ------------------------------------------------------------------------

    def _root_of(self, path: str) -> str | None:
        """The root (of this backup's side: a volume's, else an instance's) ``path`` lies in."""
        found = lxd_root(path)
        if found is None or found[2] != ("volume" if self.kind == "volume" else "instance"):
            return None
        return found[0]

    def note(self, e: Entry) -> None:
        """Judge a root by its own directory (it comes before what it holds)."""
        if self.idmap and e.type == "d" and self._root_of(e.path) == e.path:
            self._shifted[e.path] = (e.uid, e.gid) == self.idmap.host_root() != (0, 0)

    def owners(self, e: Entry) -> Entry:
        """The entry with the instance's own ids (or the host's, with ``host_ids``)."""
        if not self.idmap:
            return e
        root = self._root_of(e.path)
        if root is None:
            return e
        shifted = self._shifted.get(root)
        if shifted is None:  # no directory of its own seen (a partial tree): judge by this entry
            host = self.idmap.host_root()
            shifted = host != (0, 0) and e.uid >= host[0]
        if self.host_ids:
            return e if shifted else self.idmap.shifted(e)
        return self.idmap.unshifted(e) if shifted else e

    # present and for_restore take entries whose owners ``owners`` mapped already (the
    # entry streams of dedupe.restore.tree do it): mapping twice would shift an unshifted
    # (directly read) backup's ids twice under --numeric-host-ids

    def present(self, e: Entry) -> Entry:
        """Path and hard-link target as shown."""
        if self.root is None:
            return e
        return e.replace(path=self.shown(e.path), link=self.shown_link(e))

    def for_restore(self, e: Entry) -> Entry:
        """The path made relative to the root (the restore directory)."""
        if self.root is None:
            return e
        link = self.relative(e.link) if e.type == "h" and e.link.startswith(self.root + "/") else e.link
        return e.replace(path=self.relative(e.path), link=link)


def view_of(meta: dict[str, Any], paths: Iterable[str] | None = None, snapshot: str | None = None,
            host_ids: bool = False) -> View | None:
    """The view of a backup with ``meta``, or None when it is no LXD instance or volume
    backup. Paths as the instance sees them (``/etc``, ``etc``) choose the root;
    ``backup/...`` paths (the raw entry paths), or none and no snapshot, keep the raw
    paths (owners are still mapped)."""
    lxd = _lxd_meta(meta)
    if lxd is None:
        if snapshot:
            raise UnknownSnapshot("--snapshot goes with LXD instance and volume backups only")
        return None
    record = lxd.get("record") if isinstance(lxd.get("record"), dict) else {}
    config = record.get("config") or {}
    idmap = IdMap.parse_lenient(config.get("volatile.last_state.idmap") or config.get("volatile.idmap.last")
                                or config.get("volatile.idmap.current"))
    snapshots = [str(s) for s in lxd.get("snapshots") or []]
    view = View(str(lxd["kind"]), None, idmap, host_ids, snapshots)
    if snapshot is not None and snapshot not in snapshots:
        known = ", ".join(snapshots) or "none"
        raise UnknownSnapshot(f"backup has no snapshot {snapshot!r} (its snapshots: {known})")
    paths = list(paths or [])
    raw = [p for p in paths if is_raw(p)]
    if raw and len(raw) != len(paths):
        raise PathNotFound("give either paths as the instance sees them (/etc/...) or raw entry paths "
                           f"(backup/...), not both: {', '.join(paths)}")
    if (paths and not raw) or (not paths and snapshot):
        view.root = view.base(snapshot)
    elif raw and snapshot:
        raise UnknownSnapshot("--snapshot goes with paths as the instance sees them, not raw backup/... paths")
    return view


def is_raw(path: str) -> bool:
    """``backup/...``: an entry path as stored (a leading / makes it the instance's own)."""
    return not path.startswith("/") and (path.rstrip("/") == "backup" or path.startswith("backup/"))


def selected(path: str, wanted: list[str]) -> bool:
    return any(path == w or path.startswith(w + "/") or w == "" for w in wanted)


class Matcher:
    """Tracks which requested paths (``given``, as entry paths ``wanted``) matched
    something, and for those that did not the nearest entry above them (for the error)."""

    def __init__(self, given: list[str], wanted: list[str], view: View | None) -> None:
        self.given = given
        self.wanted = wanted
        self.view = view
        self.found: set[str] = set()
        self.nearest: dict[str, str] = {}

    def see(self, path: str) -> None:
        for w in self.wanted:
            if path == w or path.startswith(w + "/") or w == "":
                self.found.add(w)
            elif (w.startswith(path + "/") or path == "") and len(path) >= len(self.nearest.get(w, "")):
                self.nearest[w] = path

    def found_given(self) -> set[str]:
        return {g for g, w in zip(self.given, self.wanted) if w in self.found}

    def check(self, where: str, found_elsewhere: set[str] | frozenset[str] = frozenset()) -> None:
        """``PathNotFound`` for the paths found neither here nor in ``found_elsewhere``."""
        missing = [(g, w) for g, w in zip(self.given, self.wanted) if w not in self.found
                   and g not in found_elsewhere]
        if not missing:
            return
        parts = []
        for g, w in missing:
            near = self.nearest.get(w, "")
            shown = (self.view.shown(near) if self.view is not None else near) or "."
            parts.append(f"{g!r} (nearest existing parent: {shown})")
        raise PathNotFound(f"no such path in {where}: {'; '.join(parts)}")
