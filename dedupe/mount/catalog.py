"""The backups a mount shows: ``by-id/<id>`` and ``by-group/<group>/<time>`` with a
``latest`` link per group, re-listed (at most once a second) when a directory of them
is listed or an unknown id is looked up, so backups made meanwhile appear. Manifests
are loaded once each (they never change); trees are built when first entered and kept
in a small LRU bounded by their entry count."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from dedupe.mount.backup_tree import BackupTree, build
from dedupe.repository import Repository
from repo_format import manifest

SHORT = 12
REFRESH_S = 1.0
MAX_TREES = 16
MAX_TREE_ENTRIES = 2_000_000  # entries of the trees kept built (about 300 bytes each)


@dataclass
class Backup:
    id: str
    manifest: manifest.Manifest

    @property
    def short(self) -> str:
        return self.id[:SHORT]


class Catalog:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._lock = threading.RLock()
        self._tree_lock = threading.Lock()
        self.backups: dict[str, Backup] = {}  # short id -> backup
        self.groups: dict[str, dict[str, Backup]] = {}  # group -> {time name: backup}
        self._listed_at = 0.0
        self._trees: OrderedDict[str, BackupTree] = OrderedDict()
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        with self._lock:
            if not force and time.monotonic() - self._listed_at < REFRESH_S:
                return
            names = self.repo.manifest_names()
            self._listed_at = time.monotonic()
            known = {b.id for b in self.backups.values()}
            fresh = set(names) - known
            gone = known - set(names)
            if not fresh and not gone:
                return
            if fresh:
                self.repo.refresh_index()  # their chunks are in segments written since
            backups = {b.short: b for b in self.backups.values() if b.id not in gone}
            for name in fresh:
                try:
                    backups[name[:SHORT]] = Backup(name, self.repo.load_manifest(name))
                except Exception:  # noqa: BLE001 - forgotten between the listing and the load
                    continue
            self.backups = backups
            self.groups = _by_group(backups.values())

    def backup(self, short: str) -> Backup | None:
        b = self.backups.get(short)
        if b is None:
            self.refresh()
            b = self.backups.get(short)
        return b

    def tree(self, b: Backup) -> BackupTree:
        with self._tree_lock:
            t = self._trees.get(b.id)
            if t is not None:
                self._trees.move_to_end(b.id)
                return t
        t = build(self.repo, b.manifest)
        with self._tree_lock:
            self._trees[b.id] = t
            while len(self._trees) > 1 and (len(self._trees) > MAX_TREES
                                            or sum(x.entries for x in self._trees.values()) > MAX_TREE_ENTRIES):
                self._trees.popitem(last=False)
        return t

    def group_dir(self, parts: list[str]) -> tuple[set[str], dict[str, Backup]] | None:
        """Below ``by-group/<parts>``: the next group components, and the backups of the
        group ``parts`` names by time; None when nothing is there."""
        prefix = "/".join(parts)
        subdirs = set()
        for g in self.groups:
            if prefix == "" or g.startswith(prefix + "/"):
                rest = g[len(prefix):].lstrip("/")
                subdirs.add(rest.split("/", 1)[0])
        times = self.groups.get(prefix, {})
        if not subdirs and not times:
            return None
        return subdirs, times


def _when(b: Backup) -> str:
    return dt.datetime.fromtimestamp(b.manifest.time_ns / 1e9).strftime("%Y-%m-%dT%H:%M:%S")


def _by_group(backups: object) -> dict[str, dict[str, Backup]]:
    out: dict[str, dict[str, Backup]] = {}
    for b in sorted(backups, key=lambda x: (x.manifest.time_ns, x.id)):  # type: ignore[attr-defined]
        times = out.setdefault(b.manifest.group.strip("/"), {})
        name = _when(b)
        times[name if name not in times else f"{name}-{b.short}"] = b
    return out
