"""Manifests: the record of one backup, and the commit point (FORMAT.md section 8).

The manifest body is small and fixed-shape; what rebuilds the backup lives in
the item stream (section 9), stored as chunks and referenced by ``items``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from repo_format import blob, crypto, header, msgpack_codec
from repo_format.errors import FormatError
from repo_format.ids import ID_LEN

VERSION: Final = 1
SUPPORTED_VERSIONS: Final = (1,)
SCHEMA: Final = 1
SUPPORTED_SCHEMAS: Final = (1,)

# Backup kinds (section 8.2). Retired kinds are never reused.
KIND_STREAM: Final = "stream"
KIND_TAR: Final = "tar"
KIND_DIR: Final = "dir"


@dataclass
class Manifest:
    kind: str
    group: str
    time_ns: int
    host: str
    run: str  # run id: 32 hex digits shared by every manifest of one `dedupe backup` invocation
    size: int  # original bytes (stream, tar) or sum of file sizes (dir)
    items: list[tuple[bytes, int]]  # item-stream chunk refs (id, raw length)
    item_count: int
    stream_b3: bytes | None = None  # unkeyed BLAKE3 of the original stream (stream, tar)
    stats: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # source-specific (section 8.3)
    tags: list[str] = field(default_factory=list)
    repaired: dict[str, Any] | None = None  # written by ``repair backups`` (section 8.4)


_REQUIRED = ("schema", "kind", "group", "time_ns", "host", "run", "size", "items", "item_count")


CONTEXT: Final = b"manifest"


def encode(m: Manifest, cipher: crypto.BlobCipher | None = None, repo_id: bytes = b"") -> bytes:
    body: dict[str, Any] = {
        "schema": SCHEMA, "kind": m.kind, "group": m.group, "time_ns": m.time_ns, "host": m.host,
        "run": m.run, "size": m.size, "items": [[cid, n] for cid, n in m.items],
        "item_count": m.item_count, "stats": m.stats, "meta": m.meta, "tags": m.tags,
    }
    if m.stream_b3 is not None:
        body["b3"] = m.stream_b3
    if m.repaired is not None:
        body["repaired"] = m.repaired
    return header.encode_header(header.MANIFEST_MAGIC, VERSION) + blob.seal(
        msgpack_codec.pack(body), cipher=cipher, context=CONTEXT + repo_id)


def decode(data: bytes, what: str, cipher: crypto.BlobCipher | None = None, repo_id: bytes = b"") -> Manifest:
    header.decode_header(data, header.MANIFEST_MAGIC, SUPPORTED_VERSIONS, what)
    plain = blob.open_blob(memoryview(data)[header.HEADER_LEN:], what, cipher, CONTEXT + repo_id)
    b = msgpack_codec.unpack_map(plain, what, _REQUIRED)
    if b["schema"] not in SUPPORTED_SCHEMAS:
        from repo_format.errors import UnsupportedVersionError
        raise UnsupportedVersionError(f"{what}: manifest schema {b['schema']} was written by a newer dedupe")
    try:
        items = [(bytes(cid), int(n)) for cid, n in b["items"]]
        if any(len(cid) != ID_LEN for cid, _ in items):
            raise FormatError(f"{what}: item chunk id malformed")
        b3 = b.get("b3")
        repaired = b.get("repaired")
        if repaired is not None and not isinstance(repaired, dict):
            raise FormatError(f"{what}: manifest's repaired record malformed")
        return Manifest(
            kind=str(b["kind"]), group=str(b["group"]), time_ns=int(b["time_ns"]), host=str(b["host"]),
            run=str(b["run"]), size=int(b["size"]), items=items, item_count=int(b["item_count"]),
            stream_b3=bytes(b3) if b3 is not None else None, stats=dict(b.get("stats", {})),
            meta=dict(b.get("meta", {})), tags=list(b.get("tags", [])), repaired=repaired,
        )
    except (TypeError, ValueError) as e:
        raise FormatError(f"{what}: manifest malformed ({e})") from None
