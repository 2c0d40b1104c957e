"""gc's mark pass, which is also the structure check of FORMAT.md section 13 (so that
prune and gc refuse a damaged repository without reading the item streams twice):
``survey`` marks every chunk the manifests reference (item chunks and, through the
item streams, content chunks) and checks every indexed pack (``packcheck``).

Memory (benchmarks/RESULTS-gc.md): the mark set holds an 8-byte prefix of each
referenced chunk id in a sorted numpy array (a prefix collision only keeps a chunk
that could have gone); index segments are read one at a time with their entries left
packed (44 bytes a chunk, never a Python object per chunk), and only the item-stream
chunks are held in a lookup table.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from dedupe.chunk_index import packed_entry
from dedupe.errors import DedupeError
from dedupe.maintenance import packcheck
from dedupe.read import iter_items
from dedupe.repository import BackupNotFound, Repository
from dedupe.storage import ObjectNotFound
from repo_format import index, items, layout, manifest, pack
from repo_format.errors import FormatError
from repo_format.ids import ID_LEN


class RepositoryDamaged(DedupeError):
    """prune or gc refuse to run: the repository fails its structure check."""

    exit_code = 82


# -- packed index records ---------------------------------------------------------------------

Record = tuple[str, int, int, bytes]  # pack name, size, table length, packed entries (FORMAT.md 6.2)


def packed_rows(entries: bytes) -> np.ndarray:
    return np.frombuffer(entries, dtype=packed_entry())


def row_keys(rows: np.ndarray) -> np.ndarray:
    """The 8-byte id prefixes of packed entries, as the mark set holds them."""
    return np.ascontiguousarray(rows["id"][:, :8]).view("<u8").ravel()


def id_key(cid: bytes) -> int:
    return int.from_bytes(cid[:8], "little")


# -- the mark set -----------------------------------------------------------------------------

class MarkSet:
    """Referenced chunks by 8-byte id prefix. A false hit only keeps garbage.

    Prefixes are appended to a flat buffer while marking and folded into one sorted
    numpy array of unique u64 (8 bytes per referenced chunk) when it grows or when
    the first lookup comes; lookups are vectorised binary searches. For the structure
    check, ``note_indexed`` records which marked prefixes the index lists (one byte
    per referenced chunk)."""

    FOLD_AT = 1 << 18

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)
        self._buffer = array("Q")
        self._indexed: np.ndarray | None = None

    def _fold(self) -> None:
        if self._buffer:
            added = np.frombuffer(self._buffer, dtype=np.uint64)
            self._sorted = np.union1d(self._sorted, added)
            self._buffer = array("Q")
            assert self._indexed is None, "marking after note_indexed"

    def add_ids(self, ids: list[bytes], what: str) -> None:
        """Mark many chunk ids at once (vectorised: one join, no per-id Python work)."""
        if not ids:
            return
        try:
            if set(map(len, ids)) != {ID_LEN}:
                raise TypeError
            joined = b"".join(ids)
        except TypeError:
            raise FormatError(f"{what}: item stream holds a malformed chunk reference") from None
        rows = np.frombuffer(joined, dtype=np.uint8).reshape(-1, ID_LEN)
        self._buffer.frombytes(np.ascontiguousarray(rows[:, :8]).tobytes())
        if len(self._buffer) >= self.FOLD_AT:
            self._fold()

    def _positions(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each key: where it would sit in the sorted array, and whether it is there."""
        self._fold()
        if not len(self._sorted):
            return np.zeros(len(keys), dtype=np.intp), np.zeros(len(keys), dtype=bool)
        i = np.searchsorted(self._sorted, keys)
        i[i == len(self._sorted)] = 0
        return i, self._sorted[i] == keys

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Per key (u64 prefix): whether it is marked."""
        return self._positions(keys)[1]

    def __contains__(self, cid: bytes) -> bool:
        return bool(self.find(np.array([id_key(cid)], dtype=np.uint64))[0])

    def note_indexed(self, keys: np.ndarray) -> None:
        """These prefixes are in the index."""
        i, hit = self._positions(keys)
        if self._indexed is None:
            self._indexed = np.zeros(len(self._sorted), dtype=bool)
        self._indexed[i[hit]] = True

    def not_indexed(self) -> np.ndarray:
        """The marked prefixes ``note_indexed`` never saw."""
        self._fold()
        return self._sorted if self._indexed is None else self._sorted[~self._indexed]

    def __len__(self) -> int:
        self._fold()
        return len(self._sorted)


MARK_BATCH = 1 << 16  # chunk refs marked at once (2 MiB of ids in flight)


def mark_backup(repo: Repository, m: manifest.Manifest, marks: MarkSet, what: str) -> None:
    marks.add_ids([cid for cid, _ in m.items], what)
    batch: list[bytes] = []
    for item in iter_items(repo, m, what):
        batch.extend(ref[0] for ref in items.chunk_refs(item))
        if len(batch) >= MARK_BATCH:
            marks.add_ids(batch, what)
            batch = []
    marks.add_ids(batch, what)


# -- the structure check ------------------------------------------------------------------------

def damaged(problems: list[str]) -> RepositoryDamaged:
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return RepositoryDamaged(f"repository fails its structure check, refusing to remove anything: "
                             f"{problems[0]}{more}; run 'dedupe check'")


def _check_pack(view: Repository, rec: Record, stored: dict[str, int]) -> str | None:
    """What is wrong with one indexed pack (section 13, ``packcheck``), or None."""
    pname, size, table_len, entries = rec
    try:
        table = pack.encode_entries(packcheck.pack_table(view, pname, stored.get(pname), size, table_len))
        if table != entries:  # a backup or gc lists exactly its pack's table; otherwise compare row by row
            rows = {table[i:i + pack.ENTRY_LEN] for i in range(0, len(table), pack.ENTRY_LEN)}
            packcheck.require_listed(sum(entries[i:i + pack.ENTRY_LEN] not in rows
                                         for i in range(0, len(entries), pack.ENTRY_LEN)))
    except DedupeError as e:
        return str(e).removeprefix(f"pack {layout.pack_path(pname)}: ")
    return None


def _missing_refs(view: Repository, found: dict[str, manifest.Manifest], missing: np.ndarray) -> list[str]:
    """Name the backups that reference chunks the index does not list (only run when some do)."""
    problems = []
    for name, m in found.items():
        refs = itertools.chain(m.items, (r for item in iter_items(view, m) for r in items.chunk_refs(item)))
        for ref in refs:
            k = np.uint64(id_key(ref[0]))
            i = int(np.searchsorted(missing, k))
            if i < len(missing) and missing[i] == k:
                problems.append(f"backup {name[:12]}: chunk {ref[0].hex()[:16]}... not in the index")
                break
    return problems or [f"{len(missing)} referenced chunk(s) are not in the index"]


# -- the survey ---------------------------------------------------------------------------------

@dataclass
class PackUse:
    size: int
    segment: str
    live: int = 0  # stored bytes of referenced blobs
    total: int = 0  # stored bytes of all blobs


@dataclass
class Survey:
    """What the mark pass learnt from the manifests and the index (and, checking the
    structure on the way, found sound). ``collect`` continues from it."""

    view: Repository  # the repository with only the item-stream chunks indexed
    marks: MarkSet  # the chunks of the backups that stay
    segments: list[str]  # every segment present at the start
    live_segments: list[str]  # those not superseded
    manifests: set[str]  # the backups marked (those that stay)
    stored: dict[str, int]  # pack files and their sizes, listed after the segments
    packs: dict[str, PackUse] = field(default_factory=dict)
    entries: int = 0  # chunks listed by the live segments


def list_segments(repo: Repository) -> list[str]:
    return sorted(n.rsplit("/", 1)[-1] for n, _ in repo.storage.list(layout.INDEX_DIR))


def list_packs(repo: Repository) -> dict[str, int]:
    return {p.rsplit("/", 1)[-1]: size for p, size in repo.storage.list(layout.DATA_DIR)}


def load_manifests(repo: Repository, names: Iterable[str],
                    problems: list[str] | None = None) -> dict[str, manifest.Manifest]:
    """The manifests still present; with ``problems``, damaged ones are noted there and skipped."""
    out = {}
    for name in names:
        try:
            out[name] = repo.load_manifest(name)
        except BackupNotFound:
            continue  # forgotten meanwhile
        except DedupeError as e:
            if problems is None:
                raise
            problems.append(f"backup {name[:12]}: {e}")
    return out


def _item_hits(records: list[Record], wanted: set[bytes]) -> index.IndexSegment:
    """The part of ``records`` that locates the chunks in ``wanted`` (a few: item-stream chunks)."""
    wanted_keys = np.array(sorted({id_key(c) for c in wanted}), dtype=np.uint64)
    hits = []
    for name, size, table_len, entries in records:
        rows = packed_rows(entries)
        at = np.flatnonzero(np.isin(row_keys(rows), wanted_keys))
        if len(at):
            found = [e for e in pack.decode_entries(rows[at].tobytes(), name) if e.chunk_id in wanted]
            if found:
                hits.append(index.PackRecord(name, size, table_len, found))
    return index.IndexSegment(hits)


def locate_items(view: Repository, segments: Iterable[str], ms: Iterable[manifest.Manifest]) -> None:
    """Teach ``view`` where the item-stream chunks of ``ms`` it does not know yet are."""
    wanted = {cid for m in ms for cid, _ in m.items if not view.has_chunk(cid)}
    for name in segments:
        if not wanted:
            return
        hits = _item_hits(view.load_segment_packed(name)[0], wanted)
        view.add_segment(hits)
        wanted -= {e.chunk_id for r in hits.packs for e in r.entries}


def survey(repo: Repository, skip: Iterable[str] = ()) -> Survey:
    """gc's mark pass, which is also the structure check of section 13: every manifest
    and segment decodes and matches its name, every chunk a backup references is
    indexed, every indexed pack exists with its recorded size and its table holds
    what the index lists. Raises RepositoryDamaged, before anything is changed, naming
    what is wrong. The backups in ``skip`` (about to be forgotten) are neither walked
    nor marked: only what stays must be readable (restic's prune, too, walks only the
    snapshots it keeps), and walking them cost a fifth of prune's CPU. Manifests are read first: a manifest's segment is written before it, so it
    is in the listing after."""
    skip = set(skip)
    problems: list[str] = []
    view = repo.without_index()
    found = load_manifests(repo, repo.manifest_names(), problems)
    segments = list_segments(repo)
    wanted = {cid for m in found.values() for cid, _ in m.items}
    superseded: set[str] = set()
    hits: dict[str, index.IndexSegment] = {}
    for name in segments:
        try:
            records, supersedes = view.load_segment_packed(name)
        except ObjectNotFound:
            continue
        except DedupeError as e:
            problems.append(f"index segment {name[:16]}...: {e}")
            continue
        superseded.update(supersedes)
        hits[name] = _item_hits(records, wanted)
    live = [n for n in segments if n in hits and n not in superseded]
    for name in live:
        view.add_segment(hits[name])
    del hits
    marks = MarkSet()
    kept = {name: m for name, m in found.items() if name not in skip}
    for name, m in kept.items():
        try:
            mark_backup(view, m, marks, f"backup {name[:12]}")
        except (DedupeError, FormatError) as e:
            problems.append(f"backup {name[:12]}: {e}")
    s = Survey(view, marks, segments, live, set(found) - skip, list_packs(repo))
    for name in live:
        for rec in view.load_segment_packed(name)[0]:
            rows = packed_rows(rec[3])
            keys = row_keys(rows)
            if rec[0] not in s.packs:  # a pack listed twice (after an interrupted gc) counts once
                lengths = rows["len"]
                s.packs[rec[0]] = PackUse(rec[1], name, int(lengths[marks.find(keys)].sum()), int(lengths.sum()))
                s.entries += len(rows)
            marks.note_indexed(keys)
            wrong = _check_pack(view, rec, s.stored)
            if wrong is not None:
                problems.append(f"pack {layout.pack_path(rec[0])}: {wrong}")
    missing = marks.not_indexed()
    if len(missing) and not problems:
        problems = _missing_refs(view, kept, missing)
    if problems:
        raise damaged(problems)
    return s
