"""What the web UI shows, kept in memory and refreshed in the background.

- ``Snapshot``: every backup's summary (a slim manifest: no item list, the LXD
  metadata cut to kind, project, name and server), built once and then only for
  backups that appear; pages are computed from it, never from the repository, so
  they answer in milliseconds whatever the repository's size.
- ``stats`` (``dedupe stats``: reads every item stream) runs in a thread of its own, at
  a lower priority, whenever the set of backups changed, and the pages show the last
  result with its time.
- A refresher thread lists the backups every ``refresh_s`` seconds: new backups show
  up without a restart, forgotten ones go.
- Bounded: besides the summaries (a few hundred bytes a backup) only the full manifests
  of the last ``MANIFESTS`` backups opened and the entry lists of the last ``TREES``
  trees browsed are kept.

Everything that touches the repository goes through ``dedupe.api``. Requests read
through ``self.repo`` without a lock: nothing changes a handle once it is loaded; when
the index segments change, a new handle replaces it whole.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from dedupe import api

MANIFESTS = 32
TREES = 2
K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[K, V] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
        value = make()
        with self.lock:
            self.data[key] = value
            while len(self.data) > self.size:
                self.data.popitem(last=False)
        return value


def slim(info: api.BackupInfo) -> api.BackupInfo:
    """A backup's summary: its manifest without the item list and most of the metadata."""
    m = info.manifest
    lxd = m.meta.get("lxd")
    meta: dict[str, Any] = {}
    if isinstance(lxd, dict):
        server = lxd.get("server") or {}
        meta["lxd"] = {"kind": lxd.get("kind"), "project": lxd.get("project"), "name": lxd.get("name"),
                       "server": {"server_name": server.get("server_name")}}
    return api.BackupInfo(info.id, replace(m, items=[], meta=meta))


@dataclass(frozen=True)
class Snapshot:
    version: int
    backups: tuple[api.BackupInfo, ...]  # oldest first
    loaded_at: float
    by_id: dict[str, api.BackupInfo] = field(default_factory=dict)
    by_group: dict[str, list[api.BackupInfo]] = field(default_factory=dict)

    @classmethod
    def of(cls, version: int, backups: list[api.BackupInfo]) -> Snapshot:
        backups.sort(key=lambda b: (b.manifest.time_ns, b.id))
        by_group: dict[str, list[api.BackupInfo]] = {}
        for b in backups:
            by_group.setdefault(b.manifest.group, []).append(b)
        return cls(version, tuple(backups), time.time(), {b.id: b for b in backups}, by_group)


@dataclass
class StatsState:
    report: Any = None  # api.stats()
    computed_at: float = 0.0
    version: int = -1  # the snapshot it describes
    running: bool = False
    error: str | None = None


class RepoView:
    """The repository as the UI sees it; see the module docstring."""

    def __init__(self, repo: Any, refresh_s: float = 10.0, compute_stats: bool = True) -> None:
        self.repo = repo
        self.repo_id = repo.config.repo_id.hex()
        self.location = repo.storage.location
        self.encrypted = repo.secrets is not None
        self.lock = threading.RLock()
        self.refresh_s = refresh_s
        self.compute_stats = compute_stats
        self.snapshot = Snapshot.of(0, [])
        self.stats = StatsState()
        self.manifests: LRU[str, api.BackupInfo] = LRU(MANIFESTS)
        self.trees: LRU[str, Any] = LRU(TREES)  # browsable trees (dedupe.ui.tree), the last opened
        self._derived: dict[tuple[str, int], Any] = {}
        self.unreadable: dict[str, str] = {}  # backup id -> why its manifest did not load
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    # -- keeping up with the repository ------------------------------------------------

    def refresh(self) -> bool:
        """List the backups and the index segments; load the new backups, drop the gone,
        and take a new handle when the index changed (a backup, or gc: packs moved).
        True if anything changed."""
        with self.lock:
            names = set(api.backup_names(self.repo))
            current = self.snapshot
            index_changed = not api.index_is_current(self.repo)
            if names == set(current.by_id) | set(self.unreadable) and not index_changed:
                return False
            if index_changed:
                # a new handle, swapped in whole: a download still reading the old one keeps its index
                self.repo = api.another_handle(self.repo)
            kept = [b for b in current.backups if b.id in names]
            new = []
            self.unreadable = {}
            for n in sorted(names - set(current.by_id)):
                try:
                    new.append(slim(api.load_backup(self.repo, n)))
                except Exception as e:  # damaged, or forgotten since the listing: shown, not fatal
                    self.unreadable[n] = f"{type(e).__name__}: {e}"
            self.snapshot = Snapshot.of(current.version + 1, kept + new)
            self._derived = {k: v for k, v in self._derived.items() if k[1] == self.snapshot.version}
        if self.compute_stats:
            self._start_stats()
        return True

    def _start_stats(self) -> None:
        with self.lock:
            if self.stats.running:
                return
            self.stats.running = True
        threading.Thread(target=self._stats_worker, name="dedupe-ui-stats", daemon=True).start()

    def _stats_worker(self) -> None:
        try:  # below the page requests: on Linux a thread is a task of its own, with its own nice value
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (OSError, AttributeError):
            pass
        while True:
            version = self.snapshot.version
            try:
                report = api.stats(self.repo)
                with self.lock:
                    self.stats = StatsState(report, time.time(), version, True, None)
            except Exception as e:  # shown on the page; the next change tries again
                with self.lock:
                    self.stats.error = f"{type(e).__name__}: {e}"
            with self.lock:
                if self.snapshot.version == version:
                    self.stats.running = False
                    return

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.refresh_s):
                try:
                    self.refresh()
                except Exception:  # a storage hiccup: try again next time
                    pass
        self._thread = threading.Thread(target=loop, name="dedupe-ui-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    # -- derived views, computed once per snapshot --------------------------------------

    def derived(self, name: str, make: Callable[[Snapshot], Any]) -> Any:
        snap = self.snapshot
        key = (name, snap.version)
        if key not in self._derived:
            self._derived[key] = make(snap)
        return self._derived[key]

    # -- one backup ----------------------------------------------------------------------

    def backup(self, backup_id: str) -> api.BackupInfo:
        """The full manifest of one backup (full id, or a unique prefix)."""
        snap = self.snapshot
        if backup_id not in snap.by_id:
            matches = [i for i in snap.by_id if i.startswith(backup_id)] if backup_id else []
            if len(matches) != 1:
                raise KeyError(backup_id)
            backup_id = matches[0]

        return self.manifests.get(backup_id, lambda: api.load_backup(self.repo, backup_id))

    def records(self, kind: str) -> list[dict[str, Any]]:
        return api.records_of(self.repo, kind)
