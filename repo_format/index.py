"""Index segments: which pack holds each chunk (FORMAT.md section 7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from repo_format import blob, crypto, header, msgpack_codec, pack
from repo_format.errors import FormatError
from repo_format.ids import ID_LEN

VERSION: Final = 1
SUPPORTED_VERSIONS: Final = (1,)


@dataclass(frozen=True)
class PackRecord:
    """One pack as an index segment lists it."""

    name: str  # hex object name
    size: int  # bytes in the pack file
    table_len: int  # table blob + trailer: one ranged read of the pack's last table_len bytes
    entries: list[pack.PackEntry]


@dataclass
class IndexSegment:
    packs: list[PackRecord] = field(default_factory=list)
    supersedes: list[str] = field(default_factory=list)  # segment names this one replaces (section 7.3)


CONTEXT: Final = b"index-segment"


def encode(segment: IndexSegment, cipher: crypto.BlobCipher | None = None, repo_id: bytes = b"") -> bytes:
    return encode_packed([(p.name, p.size, p.table_len, pack.encode_entries(p.entries)) for p in segment.packs],
                         segment.supersedes, cipher, repo_id)


def encode_packed(packs: list[tuple[str, int, int, bytes]], supersedes: list[str],
                  cipher: crypto.BlobCipher | None = None, repo_id: bytes = b"") -> bytes:
    """``encode`` from packed entries (44 bytes each, section 6.2), as ``decode_packed`` returns them."""
    body = {
        "packs": [[bytes.fromhex(name), size, table_len, entries] for name, size, table_len, entries in packs],
        "supersedes": [bytes.fromhex(s) for s in supersedes],
    }
    return header.encode_header(header.INDEX_MAGIC, VERSION) + blob.seal(msgpack_codec.pack(body), cipher=cipher,
                                                                          context=CONTEXT + repo_id)


def decode_packed(data: bytes, what: str, cipher: crypto.BlobCipher | None = None,
                  repo_id: bytes = b"") -> tuple[list[tuple[str, int, int, bytes]], list[str]]:
    """Like ``decode``, but each pack's entries stay in their packed form (44 bytes
    each, section 6.2): ``([(name, size, table_len, entries), ...], supersedes)``."""
    header.decode_header(data, header.INDEX_MAGIC, SUPPORTED_VERSIONS, what)
    plain = blob.open_blob(memoryview(data)[header.HEADER_LEN:], what, cipher, CONTEXT + repo_id)
    body = msgpack_codec.unpack_map(plain, what, ("packs", "supersedes"))
    try:
        packs = []
        for name, size, table_len, entries in body["packs"]:
            if not isinstance(name, bytes) or len(name) != ID_LEN or not isinstance(entries, bytes) \
                    or len(entries) % pack.ENTRY_LEN:
                raise FormatError(f"{what}: pack record malformed")
            packs.append((name.hex(), int(size), int(table_len), entries))
        return packs, [bytes(s).hex() for s in body["supersedes"]]
    except (TypeError, ValueError) as e:
        raise FormatError(f"{what}: index segment malformed ({e})") from None


def decode(data: bytes, what: str, cipher: crypto.BlobCipher | None = None, repo_id: bytes = b"") -> IndexSegment:
    packs, supersedes = decode_packed(data, what, cipher, repo_id)
    return IndexSegment([PackRecord(name, size, table_len, pack.decode_entries(entries, what))
                         for name, size, table_len, entries in packs], supersedes)
