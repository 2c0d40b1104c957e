"""Item streams: the entry lists of a backup (FORMAT.md section 9).

An item stream is msgpack maps back to back. It is cut into chunks with the
repository's item chunker and stored like any data, so unchanged metadata
deduplicates between backups. Each item has a kind key ``k`` (section 9.2).
"""

from __future__ import annotations

from typing import Any, Final, Iterable, Iterator

import msgpack

from repo_format import msgpack_codec
from repo_format.errors import FormatError

ITEM_DATA: Final = "d"  # a run of stream content: {"k": "d", "c": [[id, len], ...]}
ITEM_TAR_MEMBER: Final = "m"  # a tar member: {"k": "m", "h": header, "e": entry, "dp": n, "pl": n | "pad": bytes}
ITEM_TAR_TAIL: Final = "t"  # end-of-archive blocks and trailing data: {"k": "t", "c": [[id, len], ...]}
ITEM_ENTRY: Final = "e"  # a directory-tree entry: {"k": "e", "e": entry}
ITEM_KINDS: Final = frozenset({ITEM_DATA, ITEM_TAR_MEMBER, ITEM_TAR_TAIL, ITEM_ENTRY})
MAX_ITEM_BYTES: Final = 64 << 20


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
