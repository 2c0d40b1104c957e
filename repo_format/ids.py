"""Chunk ids and object names (FORMAT.md section 2)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import blake3

ID_LEN: Final = 32
ID_KEY_LEN: Final = 32
ID_SCHEME: Final = "blake3-keyed-256"


def chunk_id(id_key: bytes, data: bytes | memoryview) -> bytes:
    """The id of a chunk: BLAKE3-256 keyed with the repository's id key."""
    return blake3.blake3(data, key=id_key).digest()


def object_name(data: bytes | memoryview) -> str:
    """The name of a content-named file (pack, index segment, manifest): unkeyed
    BLAKE3-256 of its bytes, as 64 lower-case hex digits."""
    return blake3.blake3(data).hexdigest()


def object_hasher() -> blake3.blake3:
    """A hasher whose ``hexdigest`` is the ``object_name`` of the bytes fed to it."""
    return blake3.blake3()


def object_name_of_parts(parts: Iterable[bytes | memoryview]) -> str:
    """``object_name`` of the concatenation of ``parts``."""
    h = object_hasher()
    for part in parts:
        h.update(part)
    return h.hexdigest()


def stream_hash() -> blake3.blake3:
    """A hasher for the whole-stream checksum recorded in manifests (unkeyed)."""
    return blake3.blake3()


def is_object_name(name: str) -> bool:
    return len(name) == 2 * ID_LEN and all(c in "0123456789abcdef" for c in name)
