"""Item streams: the entry lists of a backup (FORMAT.md section 9).

An item stream is msgpack maps back to back. It is cut into chunks between items
(``cut_after``) and stored like any data, so unchanged metadata deduplicates
between backups. Each item has a kind key ``k`` (section 9.2).
"""

from __future__ import annotations

from typing import Any, Final, Iterable, Iterator

import msgpack

from repo_format import msgpack_codec
from repo_format.config import ChunkerParams
from repo_format.ids import chunk_id
from repo_format.errors import FormatError

ITEM_DATA: Final = "d"  # a run of stream content: {"k": "d", "c": [[id, len], ...]}
ITEM_TAR_MEMBER: Final = "m"  # a tar member: {"k": "m", "h": header, "e": entry, "dp": n, "pl": n | "pad": bytes}
ITEM_TAR_TAIL: Final = "t"  # end-of-archive blocks and trailing data: {"k": "t", "c": [[id, len], ...]}
ITEM_ENTRY: Final = "e"  # a directory-tree entry: {"k": "e", "e": entry}
ITEM_KINDS: Final = frozenset({ITEM_DATA, ITEM_TAR_MEMBER, ITEM_TAR_TAIL, ITEM_ENTRY})
MAX_ITEM_BYTES: Final = 64 << 20


def cut_after(encoded_item: bytes, buffered: int, p: ChunkerParams, id_key: bytes) -> bool:
    """Whether the item stream is cut into a new chunk after this item (section 9.1).

    Cut points fall between items, chosen by the item's own content: after an item
    whose keyed hash is below ``2^64 * len(item) / avg`` once ``min`` bytes are
    buffered, or at ``max`` bytes whatever the hash. An unchanged item thus ends a
    chunk in every backup that holds it, and chunks resynchronise right after a
    changed item. (A byte-level chunker finds almost no cut points in tar headers,
    which are mostly zeros.)"""
    if buffered >= p.max_size:
        return True
    if buffered < p.min_size:
        return False
    h = int.from_bytes(chunk_id(id_key, encoded_item)[:8], "little")
    return h < (len(encoded_item) << 64) // p.avg_size


def encode_item(item: dict[str, Any]) -> bytes:
    return msgpack_codec.pack(item)


def decode_items(chunks: Iterable[bytes], what: str) -> Iterator[dict[str, Any]]:
    """Decode items from the item stream's chunks, in order."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=MAX_ITEM_BYTES)
    fed = 0
    try:
        for data in chunks:
            unpacker.feed(data)
            fed += len(data)
            for item in unpacker:
                if not isinstance(item, dict) or item.get("k") not in ITEM_KINDS:
                    raise FormatError(f"{what}: item stream holds a malformed item")
                yield item
    except (ValueError, msgpack.UnpackException, msgpack.BufferFull) as e:
        raise FormatError(f"{what}: item stream is damaged ({e})") from None
    if unpacker.tell() != fed:
        raise FormatError(f"{what}: item stream ends inside an item")


def chunk_refs(item: dict[str, Any]) -> list[list[Any]]:
    """The content chunk refs an item holds (section 9.2)."""
    if item["k"] in (ITEM_DATA, ITEM_TAR_TAIL):
        return item["c"]
    entry = item.get("e")
    return entry.get("c", []) if isinstance(entry, dict) else []
