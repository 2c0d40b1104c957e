"""The pack check of FORMAT.md section 13, one for ``check`` and for gc's mark pass: an
indexed pack is present, has the size the index records, and its table holds every
entry the index lists for it. Each failure is a ``DedupeError`` whose message says
what is wrong with the pack (the callers name the pack)."""

from __future__ import annotations

from collections.abc import Callable

from dedupe.errors import DedupeError
from dedupe.repository import Repository
from repo_format import layout, pack


def pack_table(repo: Repository, name: str, stored_size: int | None, size: int, table_len: int, *,
               whole: bool = False, on_read: Callable[[int], None] | None = None) -> list[pack.PackEntry]:
    """The table of the indexed pack ``name`` (``size`` and ``table_len`` as the index
    records them), once it is found in storage (``stored_size``: its listed size, None
    when not listed) with that size. With ``whole`` the pack is read entirely (its
    length reported to ``on_read``), its hash checked against its name and every blob
    opened, decompressed and re-hashed; otherwise only its table is read."""
    if stored_size is None:
        raise DedupeError("missing")
    if stored_size != size:
        raise DedupeError(f"size {stored_size}, index says {size} (truncated or damaged)")
    if whole:
        data = repo.storage.get(layout.pack_path(name))
        if on_read is not None:
            on_read(len(data))
        entries = repo.parse_pack(name, data)
        for e, sealed in pack.iter_blobs(data, entries):
            repo.open_chunk(e.chunk_id, sealed, name)
        return entries
    tail = repo.read_pack_range(name, size - table_len, table_len)
    return repo.pack_table(name, tail, size)


def require_listed(missing: int) -> None:
    """Fail when the index lists ``missing`` chunks for a pack that its table lacks."""
    if missing != 0:
        raise DedupeError(f"the index lists {missing} chunk(s) in this pack that its table does not have")
