"""A local cache in front of a remote storage (object storage).

A client reads the same immutable objects again and again: every index segment at
every start, manifests for ``list``, pack tables for ``check`` and gc. They are
content-named and never change (FORMAT.md sections 2, 11.2), so a copy kept on local
disk stays right for as long as the object exists. What is cached:

- ``index/<name>`` and ``manifests/<name>``: the whole object, kept only when its
  content hashes to its name; checked again on every cache hit, so a damaged cache
  file is dropped and the object fetched again, never used;
- pack tables: a ranged read of a pack that is exactly its table (it ends with the
  pack trailer whose length field matches, section 6.1), kept with the BLAKE3 of
  what was read and checked on every hit.

Listings, sizes and existence are never cached: they are what changes. A complete
listing of ``index``, ``manifests`` or ``data`` drops cached entries of objects that
are gone (gc). Objects this client writes go into the cache as they are written, so
a host never downloads its own segments and manifests again.

The cache lives in ``$XDG_CACHE_HOME/dedupe/loc-<hash of the repository location>/``
(``dedupe.records.cache_base``);
it only ever saves requests: any error reading or writing it is a miss.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import Any, Iterator

import blake3

from dedupe.records import cache_base
from dedupe.storage.base import Data, NoDirectory, Storage, joined
from repo_format import layout, pack
from repo_format.ids import is_object_name, object_name

NAMED_DIRS = (layout.INDEX_DIR, layout.MANIFEST_DIR)
TABLES = "tables"
TABLE_HEAD = struct.Struct("<4sQQ32s")  # magic, offset, length, BLAKE3 of the bytes
TABLE_MAGIC = b"DDTC"


def cache_dir_for(location: str, endpoint: str | None = None) -> Path:
    """The cache directory of one repository location (on one endpoint)."""
    digest = hashlib.blake2b(f"{endpoint or ''}|{location}".encode(), digest_size=16).hexdigest()
    return cache_base() / f"loc-{digest}"


def _is_table(data: bytes, length: int) -> bool:
    """Whether a ranged read returned a pack's table blob plus trailer (section 6.1)."""
    if len(data) != length or length < pack.TRAILER_LEN:
        return False
    table_len, magic = pack.TRAILER.unpack(data[-pack.TRAILER_LEN:])
    return bool(magic == pack.TRAILER_MAGIC and table_len + pack.TRAILER_LEN == length)


class CachedStorage(NoDirectory):
    """``inner`` with a local cache of immutable objects; see the module docstring."""

    def __init__(self, inner: Storage, root: Path) -> None:
        self.inner = inner
        self.location = inner.location
        self.read_span = inner.read_span
        self.read_threads = inner.read_threads
        self.root = root
        self.hits = 0
        self.misses = 0
        self.dropped = 0  # damaged cache entries found and removed

    def __getattr__(self, attr: str) -> Any:  # the inner storage's own extras (request counters)
        return getattr(self.inner, attr)

    def abort_stale_uploads(self, older_than_s: float) -> int:
        return self.inner.abort_stale_uploads(older_than_s)

    # -- cache files ----------------------------------------------------------------

    def _named_path(self, name: str) -> Path | None:
        top, _, base = name.partition("/")
        if top in NAMED_DIRS and is_object_name(base):
            return self.root / top / base
        return None

    def _table_path(self, name: str) -> Path | None:
        if name.startswith(layout.DATA_DIR + "/"):
            base = name.rsplit("/", 1)[-1]
            if is_object_name(base):
                return self.root / TABLES / base
        return None

    def _read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except OSError:
            return None

    def _write(self, path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written is only a slower cache

    @staticmethod
    def _forget(path: Path) -> None:
        try:
            path.unlink()
        except OSError:
            pass

    def _drop(self, path: Path) -> None:
        """Remove a damaged entry."""
        self.dropped += 1
        self._forget(path)

    # -- reads ----------------------------------------------------------------------

    def get(self, name: str) -> bytes:
        path = self._named_path(name)
        if path is None:
            return self.inner.get(name)
        cached = self._read(path)
        if cached is not None:
            if object_name(cached) == path.name:
                self.hits += 1
                return cached
            self._drop(path)
        self.misses += 1
        data = self.inner.get(name)
        if object_name(data) == path.name:  # damaged remote data is not kept (the repository reports it)
            self._write(path, data)
        return data

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        path = self._table_path(name)
        if path is None:
            return self.inner.get_range(name, offset, length)
        cached = self._read(path)
        if cached is not None and len(cached) >= TABLE_HEAD.size:
            magic, off, n, digest = TABLE_HEAD.unpack_from(cached)
            body = cached[TABLE_HEAD.size:]
            if magic == TABLE_MAGIC and len(body) == n and blake3.blake3(body).digest() == digest:
                if (off, n) == (offset, length):
                    self.hits += 1
                    return body
            else:
                self._drop(path)
        data = self.inner.get_range(name, offset, length)
        if _is_table(data, length):
            self.misses += 1
            self._write(path, TABLE_HEAD.pack(TABLE_MAGIC, offset, length, blake3.blake3(data).digest()) + data)
        return data

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        top = prefix.strip("/")
        seen: set[str] = set()
        for name, size in self.inner.list(prefix):
            seen.add(name.rsplit("/", 1)[-1])
            yield name, size
        # The listing was read to its end: forget objects that are gone.
        cached_dir = {layout.INDEX_DIR: self.root / layout.INDEX_DIR, layout.DATA_DIR: self.root / TABLES,
                      layout.MANIFEST_DIR: self.root / layout.MANIFEST_DIR}.get(top)
        if cached_dir is not None and cached_dir.is_dir():
            for entry in cached_dir.iterdir():
                if is_object_name(entry.name) and entry.name not in seen:
                    self._forget(entry)

    # -- writes: through, and into the cache --------------------------------------------

    def put(self, name: str, data: Data) -> None:
        self.inner.put(name, data)
        path = self._named_path(name)
        if path is not None:
            data = joined(data)
            if object_name(data) == path.name:
                self._write(path, data)

    def create(self, name: str, data: bytes) -> None:
        self.inner.create(name, data)

    def delete(self, name: str) -> None:
        self.inner.delete(name)
        for path in (self._named_path(name), self._table_path(name)):
            if path is not None:
                self._forget(path)

    def size(self, name: str) -> int:
        return self.inner.size(name)

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)
