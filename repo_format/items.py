"""Item streams: the entry lists of a backup (FORMAT.md section 9).

An item stream is msgpack maps back to back. It is cut into chunks between items
(``cut_after``) and stored like any data, so unchanged metadata deduplicates
between backups. Each item has a kind key ``k`` (section 9.2).
"""

from __future__ import annotations

import os
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


pack = msgpack_codec.pack


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


# -- the items, built and read (section 9.2) ------------------------------------------------

Refs = list[Any]  # [[chunk id, raw length], ...]


def data_item(refs: Refs) -> dict[str, Any]:
    """A run of a stream's content."""
    return {"k": ITEM_DATA, "c": refs}


def tail_item(refs: Refs) -> dict[str, Any]:
    """A tar stream's end-of-archive blocks and whatever follows them."""
    return {"k": ITEM_TAR_TAIL, "c": refs}


def entry_item(entry: dict[str, Any]) -> dict[str, Any]:
    """A directory-tree entry (``entry``: an entry map, section 9.3)."""
    return {"k": ITEM_ENTRY, "e": entry}


def member_item(header: bytes, entry: dict[str, Any], data_prefix: int, padding: bytes) -> dict[str, Any]:
    """A tar member: its raw header bytes, its entry map, the bytes of its data that are
    no content (a PAX 1.0 sparse map) and its padding (kept as a length when all zeros)."""
    item: dict[str, Any] = {"k": ITEM_TAR_MEMBER, "h": header, "e": entry}
    if data_prefix:
        item["dp"] = data_prefix
    if padding.count(0) == len(padding):
        if padding:
            item["pl"] = len(padding)
    else:
        item["pad"] = padding
    return item


def kind(item: dict[str, Any]) -> str:
    return item["k"]  # type: ignore[no-any-return]


def entry_of(item: dict[str, Any]) -> dict[str, Any]:
    """The entry map of a tree entry or a tar member."""
    return item["e"]  # type: ignore[no-any-return]


def member_header(item: dict[str, Any]) -> bytes:
    return item["h"]  # type: ignore[no-any-return]


def member_data_prefix(item: dict[str, Any]) -> int:
    return int(item.get("dp", 0))


def member_padding(item: dict[str, Any]) -> bytes:
    if "pad" in item:
        return item["pad"]  # type: ignore[no-any-return]
    return bytes(item["pl"]) if item.get("pl") else b""


def with_entry_chunks(item: dict[str, Any], refs: Refs) -> dict[str, Any]:
    """A copy of a tree entry or tar member whose content is in the chunks ``refs``."""
    return {**item, "e": {**item["e"], "c": refs}}


# -- entry maps (section 9.3) ---------------------------------------------------------------------

def set_entry_chunks(entry: dict[str, Any], refs: Refs | None) -> None:
    """Give an entry map its content chunks, or none (None). The list is kept as it is:
    a backup fills it in as the chunks are stored, before the item is written."""
    if refs is None:
        entry.pop("c", None)
    else:
        entry["c"] = refs


def entry_chunks(entry: dict[str, Any]) -> Refs:
    return entry.get("c", [])  # type: ignore[no-any-return]


def entry_map(path: str, type: str, mode: int, uid: int, gid: int, mtime_ns: int, uname: str, gname: str,
              atime_ns: int | None, ctime_ns: int | None, size: int, link: str, rdev: tuple[int, int] | None,
              xattrs: dict[str, bytes], sparse: list[tuple[int, int]] | None,
              chunks: list[tuple[bytes, int]]) -> dict[str, Any]:
    """The compact msgpack map of an entry (defaults left out)."""
    item: dict[str, Any] = {"p": _name_out(path), "t": type, "m": mode, "u": uid, "g": gid, "mt": mtime_ns}
    if uname:
        item["un"] = uname
    if gname:
        item["gn"] = gname
    if atime_ns is not None:
        item["at"] = atime_ns
    if ctime_ns is not None:
        item["ct"] = ctime_ns
    if size:
        item["sz"] = size
    if link:
        item["lt"] = _name_out(link)
    if rdev is not None:
        item["dv"] = list(rdev)
    if xattrs:
        item["x"] = dict(xattrs)
    if sparse is not None:
        item["sp"] = [list(seg) for seg in sparse]
    if chunks:
        item["c"] = [list(ref) for ref in chunks]
    return item


def entry_fields(item: dict[str, Any]) -> dict[str, Any]:
    """An entry map's fields by name (those ``entry_map`` takes), defaults filled in."""
    rdev = item.get("dv")
    sparse = item.get("sp")
    for key, what in (("u", "owner"), ("g", "group")):
        value = item.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FormatError(f"entry {_name_in(item['p'])!r}: {what} {value!r} is not a numeric id (section 9.3)")
    return dict(
        path=_name_in(item["p"]), type=item["t"], mode=item.get("m", 0o644), uid=item.get("u", 0),
        gid=item.get("g", 0), uname=item.get("un", ""), gname=item.get("gn", ""),
        mtime_ns=item.get("mt", 0), atime_ns=item.get("at"), ctime_ns=item.get("ct"),
        size=item.get("sz", 0), link=_name_in(item.get("lt", "")),
        rdev=(rdev[0], rdev[1]) if rdev is not None else None,
        xattrs=dict(item.get("x", {})),
        sparse=[(s[0], s[1]) for s in sparse] if sparse is not None else None,
        chunks=[(c[0], c[1]) for c in item.get("c", [])],
    )


def entry_item_without_path(encoded: bytes, path: str) -> bytes | None:
    """An encoded ``entry_item`` with its path left out (for a local cache keyed by the
    path; ``entry_item_with_path`` puts it back, byte for byte), or None when it is not
    shaped as ``entry_map`` makes it (the path first in a map of at most 15 fields)."""
    n = len(_ENTRY_ITEM_START)
    name = _packed_name(path)
    if (not encoded.startswith(_ENTRY_ITEM_START) or not 0x81 <= encoded[n] <= 0x8F
            or not encoded.startswith(b"\xa1p" + name, n + 1)):
        return None
    return encoded[n:n + 1] + encoded[n + 3 + len(name):]


def entry_item_with_path(stripped: bytes, path: str) -> bytes:
    """The encoded item ``entry_item_without_path`` took the path out of."""
    return b"".join((_ENTRY_ITEM_START, stripped[:1], b"\xa1p", _packed_name(path), stripped[1:]))


def _packed_name(name: str) -> bytes:
    """``pack(_name_out(name))`` without building a packer per call (once per unchanged
    file of a night): msgpack's str format (FORMAT.md section 1.4), or bin for a name
    that is not UTF-8."""
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return pack(os.fsencode(name))
    n = len(raw)
    if n < 32:
        return bytes((0xA0 | n,)) + raw
    if n < 0x100:
        return b"\xd9" + bytes((n,)) + raw
    if n < 0x10000:
        return b"\xda" + n.to_bytes(2, "big") + raw
    return b"\xdb" + n.to_bytes(4, "big") + raw


_ENTRY_ITEM_START: Final = b"\x82\xa1k\xa1e\xa1e"  # {"k": "e", "e": ... as msgpack encodes entry_item


def _name_out(name: str) -> str | bytes:
    """A name as stored: UTF-8 text, or the raw bytes when it is not valid UTF-8."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name)


def _name_in(name: str | bytes) -> str:
    return os.fsdecode(name) if isinstance(name, bytes) else name
