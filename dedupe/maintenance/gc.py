"""Garbage collection: free the space of chunks no backup references (FORMAT.md section 15).

Two phases. Phase 1 runs beside backups, under a shared *maintenance* lock that
excludes only other prune/gc/forget runs: it marks every chunk the manifests
reference (item chunks and, through the item streams, content chunks), sorts packs
into kept, dead (nothing referenced) and partly used, copies the referenced blobs of
the most wasteful partly used packs into new packs (until at most ``max_unused`` of
the stored bytes are unreferenced, as restic's ``--max-unused``), and writes the
index of every pack it keeps in new segments that supersede nothing yet. Phase 2
upgrades to the exclusive lock, so no backup is running: it marks the manifests
committed since phase 1 began (a backup may have reused a chunk phase 1 found
unreferenced; such packs are kept), writes the segment that supersedes all the old
ones, and only then deletes packs no segment lists, the old segments, forgotten
protection markers and ``.tmp`` leftovers older than an hour.

The mark pass (``survey``) is also the structure check of section 13, so that prune
and gc refuse a damaged repository without reading the item streams twice.

Memory (benchmarks/RESULTS-gc.md): the mark set holds an 8-byte prefix of each
referenced chunk id in a sorted numpy array (a prefix collision only keeps a chunk
that could have gone); index segments are read one at a time with their entries left
packed (44 bytes a chunk, never a Python object per chunk), and only the item-stream
chunks are held in a lookup table.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import time
from array import array
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from dedupe import locking
from dedupe.chunk_index import packed_entry
from dedupe.errors import DedupeError
from dedupe.repository import BackupNotFound, CorruptObject, Repository
from dedupe.read import iter_items
from dedupe.storage import ObjectNotFound, Storage
from dedupe.storage.local import LocalStorage
from dedupe.backup.writer import DEFAULT_PACK_SIZE
from repo_format import index, items, layout, lock, manifest, pack
from repo_format.errors import FormatError
from repo_format.ids import ID_LEN

DEFAULT_MAX_UNUSED = 0.05  # restic's default --max-unused
TMP_MAX_AGE_S = 3600.0
SEGMENT_ENTRIES = 100_000  # chunks per replacement index segment: bounds memory when reading it back
MAINTENANCE = frozenset({"prune", "gc", "forget", "protect"})
LOCK_WAIT_S = 600.0


class RepositoryDamaged(DedupeError):
    """prune or gc refuse to run: the repository fails its structure check."""

    exit_code = 82


# -- locks ----------------------------------------------------------------------------------

def _live_locks(storage: Storage) -> Iterator[tuple[str, lock.LockRecord]]:
    for path, _ in storage.list(layout.LOCK_DIR):
        try:
            rec = lock.decode(storage.get(path), path)
        except (ObjectNotFound, FormatError):
            continue
        if not locking.is_stale(rec):
            yield path.rsplit("/", 1)[-1], rec


@contextlib.contextmanager
def maintenance_lock(storage: Storage, purpose: str, wait_s: float = 60.0) -> Iterator[locking.Lock]:
    """A shared lock that backups, restores and checks coexist with, but no other
    prune, gc or forget (section 15.1)."""
    deadline = time.monotonic() + wait_s
    while True:
        held = locking.acquire(storage, exclusive=False, purpose=purpose,
                               wait_s=max(0.0, deadline - time.monotonic()))
        others = [f"{r.purpose} by pid {r.pid} on {r.host}" for n, r in _live_locks(storage)
                  if n != held.name and r.purpose in MAINTENANCE]
        if not others:
            break
        held.release()
        if time.monotonic() >= deadline:
            raise locking.RepositoryLocked(f"{storage.location} is locked: {others[0]} is running")
        time.sleep(0.1 + secrets.randbelow(200) / 1000)
    try:
        yield held
    finally:
        held.release()


# -- packed index records ---------------------------------------------------------------------

Record = tuple[str, int, int, bytes]  # pack name, size, table length, packed entries (FORMAT.md 6.2)


def _rows(entries: bytes) -> np.ndarray:
    return np.frombuffer(entries, dtype=packed_entry())


def _keys(rows: np.ndarray) -> np.ndarray:
    """The 8-byte id prefixes of packed entries, as the mark set holds them."""
    return np.ascontiguousarray(rows["id"][:, :8]).view("<u8").ravel()


def _key(cid: bytes) -> int:
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
        return bool(self.find(np.array([_key(cid)], dtype=np.uint64))[0])

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
    """What is wrong with one indexed pack (section 13: present, right size, its table
    holds every entry the index lists for it), or None."""
    pname, size, table_len, entries = rec
    actual = stored.get(pname)
    if actual is None:
        return "missing"
    if actual != size:
        return f"size {actual}, index says {size} (truncated or damaged)"
    try:
        table = pack.encode_entries(view.pack_table(pname, view.read_pack_range(pname, size - table_len, table_len),
                                                    size))
    except DedupeError as e:
        return str(e).removeprefix(f"pack {layout.pack_path(pname)}: ")
    if table != entries:  # a backup or gc lists exactly its pack's table; otherwise compare row by row
        rows = {table[i:i + pack.ENTRY_LEN] for i in range(0, len(table), pack.ENTRY_LEN)}
        extra = sum(entries[i:i + pack.ENTRY_LEN] not in rows for i in range(0, len(entries), pack.ENTRY_LEN))
        if extra:
            return f"the index lists {extra} chunk(s) in this pack that its table does not have"
    return None


def _missing_refs(view: Repository, found: dict[str, manifest.Manifest], missing: np.ndarray) -> list[str]:
    """Name the backups that reference chunks the index does not list (only run when some do)."""
    problems = []
    for name, m in found.items():
        refs = itertools.chain(m.items, (r for item in iter_items(view, m) for r in items.chunk_refs(item)))
        for ref in refs:
            k = np.uint64(_key(ref[0]))
            i = int(np.searchsorted(missing, k))
            if i < len(missing) and missing[i] == k:
                problems.append(f"backup {name[:12]}: chunk {ref[0].hex()[:16]}... not in the index")
                break
    return problems or [f"{len(missing)} referenced chunk(s) are not in the index"]


# -- report -----------------------------------------------------------------------------------

@dataclass
class GcOptions:
    max_unused: float = DEFAULT_MAX_UNUSED  # fraction of stored bytes left unreferenced in kept packs
    dry_run: bool = False
    pack_size: int = DEFAULT_PACK_SIZE
    lock_wait_s: float = LOCK_WAIT_S  # how long phase 2 waits for running backups
    tmp_max_age_s: float = TMP_MAX_AGE_S
    before_sweep: Callable[[], None] | None = None  # test hook: runs between phase 1 and phase 2


@dataclass
class GcReport:
    backups: int = 0
    packs_before: int = 0
    bytes_before: int = 0
    packs_after: int = 0
    bytes_after: int = 0
    packs_deleted: int = 0  # dead, repacked or not indexed
    bytes_deleted: int = 0
    packs_repacked: int = 0
    packs_written: int = 0
    bytes_written: int = 0
    chunks_referenced: int = 0
    unused_bytes_after: int = 0  # unreferenced blobs left in kept packs
    packs_kept_for_new_backups: int = 0
    segments_replaced: int = 0
    temp_files_removed: int = 0
    uploads_aborted: int = 0  # S3 multipart uploads left incomplete (FORMAT.md 11.2)
    markers_removed: int = 0
    dry_run: bool = False

    @property
    def freed(self) -> int:
        return self.bytes_before - self.bytes_after

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "freed": self.freed}


# -- planning -----------------------------------------------------------------------------------

@dataclass
class _Pack:
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
    packs: dict[str, _Pack] = field(default_factory=dict)
    entries: int = 0  # chunks listed by the live segments


def _list_segments(repo: Repository) -> list[str]:
    return sorted(n.rsplit("/", 1)[-1] for n, _ in repo.storage.list(layout.INDEX_DIR))


def _list_packs(repo: Repository) -> dict[str, int]:
    return {p.rsplit("/", 1)[-1]: size for p, size in repo.storage.list(layout.DATA_DIR)}


def _load_manifests(repo: Repository, names: Iterable[str],
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
    wanted_keys = np.array(sorted({_key(c) for c in wanted}), dtype=np.uint64)
    hits = []
    for name, size, table_len, entries in records:
        rows = _rows(entries)
        at = np.flatnonzero(np.isin(_keys(rows), wanted_keys))
        if len(at):
            found = [e for e in pack.decode_entries(rows[at].tobytes(), name) if e.chunk_id in wanted]
            if found:
                hits.append(index.PackRecord(name, size, table_len, found))
    return index.IndexSegment(hits)


def _locate_items(view: Repository, segments: Iterable[str], ms: Iterable[manifest.Manifest]) -> None:
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
    found = _load_manifests(repo, repo.manifest_names(), problems)
    segments = _list_segments(repo)
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
    s = Survey(view, marks, segments, live, set(found) - skip, _list_packs(repo))
    for name in live:
        for rec in view.load_segment_packed(name)[0]:
            rows = _rows(rec[3])
            keys = _keys(rows)
            if rec[0] not in s.packs:  # a pack listed twice (after an interrupted gc) counts once
                lengths = rows["len"]
                s.packs[rec[0]] = _Pack(rec[1], name, int(lengths[marks.find(keys)].sum()), int(lengths.sum()))
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


def _choose_repacks(packs: dict[str, _Pack], max_unused: float) -> set[str]:
    """The partly used packs to rewrite, most wasteful first, until the unreferenced
    bytes left in kept packs are at most ``max_unused`` of all kept bytes."""
    partly = sorted((p for p in packs.items() if 0 < p[1].live < p[1].total),
                    key=lambda kv: (kv[1].live / kv[1].total, kv[0]))
    unused = sum(p.total - p.live for p in packs.values() if p.live)
    stored = sum(p.live for p in packs.values()) + unused
    chosen = set()
    for name, p in partly:
        if unused <= max_unused * stored:
            break
        chosen.add(name)
        unused -= p.total - p.live
        stored -= p.total - p.live
    return chosen


# -- writing ------------------------------------------------------------------------------------

class _SegmentWriter:
    """Writes pack records into index segments of at most SEGMENT_ENTRIES chunks."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.records: list[Record] = []
        self.entries = 0
        self.written: list[str] = []
        self.packs: set[str] = set()

    def add(self, rec: Record) -> None:
        self.records.append(rec)
        self.packs.add(rec[0])
        self.entries += len(rec[3]) // pack.ENTRY_LEN
        if self.entries >= SEGMENT_ENTRIES:
            self.flush()

    def flush(self, supersedes: list[str] | None = None) -> None:
        if self.records or supersedes:
            self.written.append(self.repo.write_segment_packed(self.records, supersedes or []))
        self.records, self.entries = [], 0


class _Repacker:
    """Copies verified blobs into new packs, as a pipeline over both cores: the next
    pack is read while this one's blobs are verified (on two threads: zstd and BLAKE3
    release the GIL), and a finished pack is stored while the next one fills. A new
    pack's record reaches the index (``out``) only once the pack is stored."""

    def __init__(self, repo: Repository, pack_size: int, out: _SegmentWriter, report: GcReport) -> None:
        self.repo = repo
        self.pack_size = pack_size
        self.out = out
        self.report = report
        self.builder = repo.new_pack_builder()
        self._verifiers = ThreadPoolExecutor(2, thread_name_prefix="gc-verify")
        self._storer = ThreadPoolExecutor(1, thread_name_prefix="gc-store")
        self._storing: tuple[Future[None], Record] | None = None

    def copy_all(self, todo: list[tuple[Record, np.ndarray]]) -> None:
        """Copy the blobs each ``live`` mask marks, each opened and checked against its
        id first (a damaged pack stops gc; nothing unverified is copied)."""
        with ThreadPoolExecutor(1, thread_name_prefix="gc-read") as reader:
            def fetch(rec: Record) -> Future[bytes]:
                return reader.submit(self.repo.storage.get, layout.pack_path(rec[0]))
            ahead = fetch(todo[0][0]) if todo else None
            for i, (rec, live) in enumerate(todo):
                assert ahead is not None
                data = ahead.result()
                ahead = fetch(todo[i + 1][0]) if i + 1 < len(todo) else None
                self._copy(rec, live, data)

    def _copy(self, rec: Record, live: np.ndarray, data: bytes) -> None:
        rows = _rows(rec[3])[live]
        blobs = []
        for cid, off, length, raw in zip(rows["id"], rows["off"].tolist(), rows["len"].tolist(), rows["raw"].tolist()):
            sealed = data[off:off + length]
            if len(sealed) != length:
                raise CorruptObject(f"pack {layout.pack_path(rec[0])} is truncated")
            blobs.append((cid.tobytes(), sealed, raw))
        def verify(blob: tuple[bytes, bytes, int]) -> None:
            self.repo.open_chunk(blob[0], blob[1], rec[0])  # raises if the blob is damaged

        for _ in self._verifiers.map(verify, blobs):
            pass
        for cid, sealed, raw in blobs:
            self.builder.add(cid, sealed, raw)
            if self.builder.size >= self.pack_size:
                self.flush()

    def flush(self) -> None:
        """Store the pack being built (in the background) after the previous one is in."""
        self._settle()
        if not len(self.builder):
            return
        name, parts, table_len = self.builder.finish_parts()
        record = (name, self.builder.size, table_len, pack.encode_entries(self.builder.entries))
        self._storing = (self._storer.submit(self.repo.storage.put, layout.pack_path(name), parts), record)
        self.builder = self.repo.new_pack_builder()

    def close(self) -> None:
        """Store what is left and wait for it; then every new pack is in ``out``."""
        self.flush()
        self._settle()

    def shutdown(self) -> None:
        """End the threads (after a failure too: a pack being stored is finished, and
        stays unindexed until a later gc removes it)."""
        self._verifiers.shutdown()
        self._storer.shutdown()

    def _settle(self) -> None:
        if self._storing is None:
            return
        done, record = self._storing
        self._storing = None
        done.result()
        self.out.add(record)
        self.report.packs_written += 1
        self.report.bytes_written += record[1]


# -- the run ------------------------------------------------------------------------------------

def collect(repo: Repository, held: locking.Lock, opts: GcOptions | None = None,
            done: Survey | None = None) -> GcReport:
    """Run gc; the caller holds the maintenance lock ``held`` (see ``maintenance_lock``).
    ``done``: the mark pass the caller already ran (prune: before forgetting)."""
    opts = opts or GcOptions()
    report = GcReport(dry_run=opts.dry_run)
    s = done or survey(repo)
    view, marks, packs, stored = s.view, s.marks, s.packs, s.stored
    report.backups = len(s.manifests)
    report.chunks_referenced = len(marks)
    report.packs_before, report.bytes_before = len(stored), sum(stored.values())
    repack = _choose_repacks(packs, opts.max_unused)
    dead = {n for n, p in packs.items() if not p.live}
    # Rewrite the index when something goes, or when it is in more segments than a rewrite leaves.
    rewrite = bool(dead or repack) or len(s.live_segments) > 1 + s.entries // SEGMENT_ENTRIES
    if opts.dry_run:
        keep = {n: stored.get(n, p.size) for n, p in packs.items() if n not in dead and n not in repack}
        report.packs_after = len(keep) + (1 if repack else 0)
        report.bytes_after = sum(keep.values()) + sum(packs[n].live for n in repack)
        report.packs_deleted = len(stored) - len(keep)
        report.packs_repacked = len(repack)
        report.bytes_deleted = report.bytes_before - sum(keep.values())
        report.unused_bytes_after = sum(p.total - p.live for n, p in packs.items() if n in keep)
        return report

    # Phase 1, beside running backups: new packs and the index of what stays.
    out = _SegmentWriter(view)
    gone: dict[str, np.ndarray] = {}  # removed pack -> prefixes of the chunks it takes away
    if rewrite:
        repacker = _Repacker(view, opts.pack_size, out, report)
        try:
            repacker.copy_all(_rewrite_plan(view, s, repack, dead, marks, out, gone, report))
            repacker.close()  # the last partial batch of records goes into phase 2's segment
        finally:
            repacker.shutdown()
    if opts.before_sweep is not None:
        opts.before_sweep()

    # Phase 2, alone: what backups committed meanwhile, the replacing segment, then deletions.
    with locking.acquire(repo.storage, exclusive=True, purpose="gc", wait_s=opts.lock_wait_s, also_own=held.name):
        _sweep(repo, s, out if rewrite else None, gone, opts, report)
    return report


def _rewrite_plan(view: Repository, s: Survey, repack: set[str], dead: set[str], marks: MarkSet,
                  out: _SegmentWriter, gone: dict[str, np.ndarray],
                  report: GcReport) -> list[tuple[Record, np.ndarray]]:
    """Phase 1's walk of the index: returns the packs to rewrite with their live-blob
    masks; dead ones are noted in ``gone``, the rest carried into the new index as they are."""
    todo = []
    for name in s.live_segments:
        for rec in view.load_segment_packed(name)[0]:
            if rec[0] in out.packs or rec[0] in gone:
                continue
            if rec[0] in repack:
                keys = _keys(_rows(rec[3]))
                live = marks.find(keys)
                todo.append((rec, live))
                gone[rec[0]] = keys[~live]
                report.packs_repacked += 1
            elif rec[0] in dead:
                gone[rec[0]] = _keys(_rows(rec[3]))
            else:
                out.add(rec)
    return todo


def _sweep(repo: Repository, s: Survey, out: _SegmentWriter | None, gone: dict[str, np.ndarray],
           opts: GcOptions, report: GcReport) -> None:
    """Phase 2, under the exclusive lock. ``out`` holds phase 1's segments, or is
    None when phase 1 left the index as it was (then only unindexed packs go)."""
    view = s.view
    now_segments = _list_segments(repo)
    mine = set(out.written) if out is not None else set()
    new_segments = [n for n in now_segments if n not in s.segments and n not in mine]
    carried: list[Record] = []  # packs of backups committed during phase 1
    for name in new_segments:
        carried.extend(view.load_segment_packed(name)[0])
    late = _load_manifests(repo, [n for n in repo.manifest_names() if n not in s.manifests])
    if late and gone:
        _locate_items(view, new_segments + s.live_segments, late.values())
        late_marks = MarkSet()
        for name, m in late.items():
            mark_backup(view, m, late_marks, f"backup {name[:12]}")
        rescued = {p for p, keys in gone.items() if late_marks.find(keys).any()}
        for name in sorted({s.packs[p].segment for p in rescued}):
            carried.extend(r for r in view.load_segment_packed(name)[0] if r[0] in rescued)
        report.packs_kept_for_new_backups = len(rescued)
    replaced: list[str] = []
    if out is None:
        indexed = set(s.packs) | {r[0] for r in carried}
    else:
        for rec in carried:
            out.add(rec)
        replaced = [n for n in now_segments if n not in mine]
        out.flush(supersedes=replaced)  # the commit point of gc: from here on the old segments are ignored
        report.segments_replaced = len(replaced)
        indexed = out.packs
    stored = _list_packs(repo)
    for name in sorted(set(stored) - indexed):
        repo.storage.delete(layout.pack_path(name))
        report.packs_deleted += 1
        report.bytes_deleted += stored[name]
    for name in replaced:
        repo.storage.delete(layout.index_path(name))
    kept = set(stored) & indexed
    report.packs_after = len(kept)
    report.bytes_after = sum(stored[n] for n in kept)
    report.unused_bytes_after = sum(p.total - p.live for n, p in s.packs.items() if n in kept)
    report.markers_removed = _drop_markers(repo)
    report.temp_files_removed = _drop_temp_files(repo.storage, opts.tmp_max_age_s)
    report.uploads_aborted = repo.storage.abort_stale_uploads(opts.tmp_max_age_s)


def _drop_markers(repo: Repository) -> int:
    from dedupe.maintenance.prune import PROTECT_DIR
    backups = set(repo.manifest_names())
    n = 0
    for path, _ in repo.storage.list(PROTECT_DIR):
        if path.rsplit("/", 1)[-1] not in backups:
            repo.storage.delete(path)
            n += 1
    return n


def _drop_temp_files(storage: Storage, max_age_s: float) -> int:
    """Leftovers of interrupted writes (FORMAT.md section 11.1) older than ``max_age_s``."""
    if not isinstance(storage, LocalStorage):
        return 0
    cutoff = time.time() - max_age_s
    n = 0
    for name in list(storage.temp_files()):
        try:
            if os.stat(storage.root / name).st_mtime < cutoff:
                os.unlink(storage.root / name)
                n += 1
        except FileNotFoundError:
            continue
    return n
