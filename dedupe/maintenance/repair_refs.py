"""Which backups reference chunks the index lacks (lost ones), for ``repair packs``'
report and for ``repair backups``.

An item stream is walked one item chunk at a time: chunks end between items (FORMAT.md
section 9.1), so when one item chunk is lost only its own items are, and the walk
goes on with the next one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dedupe.errors import DedupeError
from dedupe.read import read_chunks
from dedupe.repository import CorruptObject, MissingObject, Repository
from repo_format import items, manifest
from repo_format.errors import FormatError


@dataclass
class Lacking:
    """What one backup lacks: content chunks (id -> raw length) and item chunks."""

    content: dict[bytes, int] = field(default_factory=dict)
    item_chunks: list[bytes] = field(default_factory=list)
    error: str | None = None  # an item chunk that is present but does not decode

    def __bool__(self) -> bool:
        return bool(self.content or self.item_chunks or self.error)

    def to_json(self) -> dict[str, object]:
        return {"content_chunks": len(self.content), "content_bytes": sum(self.content.values()),
                "item_chunks": len(self.item_chunks), "error": self.error}


def item_chunks(repo: Repository, m: manifest.Manifest, what: str) -> Iterator[tuple[bytes, int, list[dict[str, Any]] | None]]:
    """``(id, raw length, items)`` of each item chunk of ``m``, ``items`` None when the
    chunk is lost: not in the index, or its blob or its items damaged (storage errors
    are raised, never taken for loss)."""
    for cid, n in m.items:
        its: list[dict[str, Any]] | None = None
        if repo.has_chunk(cid):
            try:
                (data,) = read_chunks(repo, [(cid, n)])
                its = list(items.decode_items([bytes(data)], what))
            except (CorruptObject, MissingObject, FormatError):
                its = None
        yield cid, n, its


def lacking(repo: Repository, m: manifest.Manifest, what: str) -> Lacking:
    """The chunks backup ``m`` references that the index lacks."""
    out = Lacking()
    try:
        for cid, _n, its in item_chunks(repo, m, what):
            if its is None:
                out.item_chunks.append(cid)
                continue
            for item in its:
                for ref_id, ref_len in items.chunk_refs(item):
                    ref_id = bytes(ref_id)
                    if not repo.has_chunk(ref_id):
                        out.content[ref_id] = int(ref_len)
    except (DedupeError, FormatError) as e:
        out.error = str(e)
    return out


def damaged_backups(repo: Repository) -> dict[str, Lacking]:
    """Every backup that references a chunk the index lacks, with what it lacks (a
    manifest that does not load is left out: ``check`` names it, ``forget`` removes it)."""
    found: dict[str, Lacking] = {}
    for name in repo.manifest_names():
        try:
            m = repo.load_manifest(name)
        except (DedupeError, FormatError):
            continue
        lack = lacking(repo, m, f"backup {name[:12]}")
        if lack:
            found[name] = lack
    return found
