"""The files cache: skip reading files that did not change since the last backup.

Like borg's and restic's, it keys on what the file system says about a file:
path, inode, size, mtime and ctime (nanoseconds). A hit reuses the chunk list of
the previous backup, provided every chunk is still in the repository's index (so
a gc that removed them turns the hit into a miss, never into a broken backup).
The cache is local (``$XDG_CACHE_HOME/dedupe/<repo id>/files-<group hash>``), one
file per repository and group, rewritten after each successful backup. A missing,
damaged or foreign cache is simply empty: it can only save work, never change
what is stored.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import msgpack

from dedupe.repository import Repository

VERSION = 1
# Files modified this close to the start of the backup are not cached: a change in
# the same timestamp tick would go unnoticed next time.
RECENT_NS = 2_000_000_000


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dedupe"


Key = tuple[int, int, int, int]  # inode, size, mtime_ns, ctime_ns


class FilesCache:
    def __init__(self, repo: Repository, group: str, root: Path | None = None) -> None:
        digest = hashlib.blake2b(group.encode(), digest_size=12).hexdigest()
        self.path = (root or cache_root()) / repo.config.repo_id.hex() / f"files-{digest}"
        self.repo = repo
        self.old: dict[str, list[Any]] = {}
        self.new: dict[str, list[Any]] = {}
        self.started_ns = time.time_ns()
        self.hits = 0
        self.misses = 0
        self._load()

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
            obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
            if isinstance(obj, dict) and obj.get("v") == VERSION and isinstance(obj.get("files"), dict):
                self.old = obj["files"]
        except (OSError, ValueError, msgpack.UnpackException, TypeError):
            self.old = {}

    def lookup(self, path: str, key: Key) -> list[tuple[bytes, int]] | None:
        hit = self.old.get(path)
        if hit is None or tuple(hit[0]) != key or not all(self.repo.has_chunk(c[0]) for c in hit[1]):
            self.misses += 1
            return None
        self.hits += 1
        return [(c[0], c[1]) for c in hit[1]]

    def remember(self, path: str, key: Key, refs: list[tuple[bytes, int]], sparse: Any = None) -> None:
        if self.started_ns - key[2] < RECENT_NS:
            return
        self.new[path] = [list(key), refs, sparse]

    def sparse_of(self, path: str) -> Any:
        hit = self.old.get(path)
        return hit[2] if hit is not None and len(hit) > 2 else None

    def save(self) -> None:
        """Write the cache of this backup (call after the commit)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
            tmp.write_bytes(msgpack.packb({"v": VERSION, "files": self.new}, use_bin_type=True))
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs time next night
