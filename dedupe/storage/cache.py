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
