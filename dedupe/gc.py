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

Memory: the mark set holds an 8-byte prefix of each referenced chunk id (a prefix
collision only keeps a chunk that could have gone; as a Python set of ints it costs
about 70 bytes a chunk); the index is read one segment at a time, and only the
item-stream chunks are held in a lookup table (benchmarks/RESULTS-gc.md).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from dedupe import locking
from dedupe.check import check
from dedupe.errors import DedupeError
from dedupe.repository import BackupNotFound, Repository
from dedupe.restore import iter_items
from dedupe.storage import ObjectNotFound, Storage
from dedupe.storage.base import abort_stale_writes
from dedupe.storage.local import LocalStorage
from dedupe.writer import DEFAULT_PACK_SIZE
from repo_format import index, items, layout, lock, manifest
from repo_format.errors import FormatError

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


# -- structure check --------------------------------------------------------------------------

def require_sound(repo: Repository) -> None:
    """Refuse to remove anything from a repository that fails ``check`` (structure)."""
    report = check(repo, read_data=False)
    if not report.ok:
        more = f" (and {len(report.errors) - 1} more problem(s))" if len(report.errors) > 1 else ""
        raise RepositoryDamaged(f"repository fails its structure check, refusing to remove anything: "
                                f"{report.errors[0]}{more}; run 'dedupe check'")


# -- the mark set -----------------------------------------------------------------------------

def _key(cid: bytes) -> int:
    return int.from_bytes(cid[:8], "little")


class MarkSet:
    """Referenced chunks by 8-byte id prefix. A false hit only keeps garbage.

    Prefixes are appended to a flat buffer while marking and folded into one sorted
    numpy array of unique u64 (8 bytes per referenced chunk) when it grows or when
    the first lookup comes; lookups are binary searches."""

    FOLD_AT = 1 << 20

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)
        self._buffer = array("Q")

    def _fold(self) -> None:
        if self._buffer:
            added = np.frombuffer(self._buffer, dtype=np.uint64)
            self._sorted = np.union1d(self._sorted, added)
            self._buffer = array("Q")

    def add(self, cid: bytes) -> None:
        self.add_key(int.from_bytes(cid[:8], "little"))

    def add_key(self, k: int) -> None:
        self._buffer.append(k)
        if len(self._buffer) >= self.FOLD_AT:
            self._fold()

    def __contains__(self, cid: bytes) -> bool:
        return self.has_key(int.from_bytes(cid[:8], "little"))

    def has_key(self, k: int) -> bool:
        self._fold()
        i = int(np.searchsorted(self._sorted, np.uint64(k)))
        return i < len(self._sorted) and int(self._sorted[i]) == k

    def __len__(self) -> int:
        self._fold()
        return len(self._sorted)


def mark_backup(repo: Repository, m: manifest.Manifest, marks: MarkSet, what: str) -> None:
    for cid, _ in m.items:
        marks.add(cid)
    for item in iter_items(repo, m, what):
        for ref in items.chunk_refs(item):
            marks.add(ref[0])


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
class _Scan:
    """What phase 1 learnt from the index and the manifests."""

    segments: list[str]  # every segment present at the start
    live_segments: list[str]  # those not superseded
    manifests: set[str]
    packs: dict[str, _Pack] = field(default_factory=dict)
    entries: int = 0  # chunks listed by the live segments


def _list_segments(repo: Repository) -> list[str]:
    return sorted(n.rsplit("/", 1)[-1] for n, _ in repo.storage.list(layout.INDEX_DIR))


def _load_manifests(repo: Repository, names: Iterable[str]) -> dict[str, manifest.Manifest]:
    out = {}
    for name in names:
        try:
            out[name] = repo.load_manifest(name)
        except BackupNotFound:
            continue  # forgotten meanwhile
    return out


def _item_hits(seg: index.IndexSegment, wanted: set[bytes]) -> index.IndexSegment:
    """The part of ``seg`` that locates the chunks in ``wanted``."""
    hits = [index.PackRecord(r.name, r.size, r.table_len, [e for e in r.entries if e.chunk_id in wanted])
            for r in seg.packs]
    return index.IndexSegment([r for r in hits if r.entries])


def _locate_items(view: Repository, segments: Iterable[str], ms: Iterable[manifest.Manifest]) -> None:
    """Teach ``view`` where the item-stream chunks of ``ms`` it does not know yet are."""
    wanted = {cid for m in ms for cid, _ in m.items if not view.has_chunk(cid)}
    for name in segments:
        if not wanted:
            return
        hits = _item_hits(view.load_segment(name), wanted)
        view.add_segment(hits)
        wanted -= {e.chunk_id for r in hits.packs for e in r.entries}


def _scan(repo: Repository, view: Repository, marks: MarkSet) -> _Scan:
    # Manifests first: a manifest's segment is written before it, so it is in the listing after.
    found = _load_manifests(repo, repo.manifest_names())
    segments = _list_segments(repo)
    wanted = {cid for m in found.values() for cid, _ in m.items}
    superseded: set[str] = set()
    hits: dict[str, index.IndexSegment] = {}
    for name in segments:
        seg = view.load_segment(name)
        superseded.update(seg.supersedes)
        hits[name] = _item_hits(seg, wanted)
    scan = _Scan(segments, [n for n in segments if n not in superseded], set(found))
    for name in scan.live_segments:
        view.add_segment(hits[name])
    del hits
    for name, m in found.items():
        mark_backup(view, m, marks, f"backup {name[:12]}")
    for name in scan.live_segments:
        for rec in view.load_segment(name).packs:
            if rec.name in scan.packs:
                continue
            p = scan.packs[rec.name] = _Pack(rec.size, name)
            scan.entries += len(rec.entries)
            for e in rec.entries:
                p.total += e.length
                if e.chunk_id in marks:
                    p.live += e.length
    return scan


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
        self.records: list[index.PackRecord] = []
        self.entries = 0
        self.written: list[str] = []
        self.packs: set[str] = set()

    def add(self, rec: index.PackRecord) -> None:
        self.records.append(rec)
        self.packs.add(rec.name)
        self.entries += len(rec.entries)
        if self.entries >= SEGMENT_ENTRIES:
            self.flush()

    def flush(self, supersedes: list[str] | None = None) -> None:
        if self.records or supersedes:
            self.written.append(self.repo.write_segment(index.IndexSegment(self.records, supersedes or [])))
        self.records, self.entries = [], 0


class _Repacker:
    """Copies verified blobs into new packs."""

    def __init__(self, repo: Repository, pack_size: int, out: _SegmentWriter, report: GcReport) -> None:
        self.repo = repo
        self.pack_size = pack_size
        self.out = out
        self.report = report
        self.builder = repo.new_pack_builder()

    def copy_live(self, rec: index.PackRecord, marks: MarkSet) -> None:
        data = self.repo.storage.get(layout.pack_path(rec.name))
        self.repo.parse_pack(rec.name, data)  # the whole pack matches its name
        for e in rec.entries:
            if e.chunk_id in marks:
                sealed = data[e.offset:e.offset + e.length]
                self.repo.open_chunk(e.chunk_id, sealed, rec.name)  # never copy a damaged blob
                self.builder.add(e.chunk_id, sealed, e.raw_len)
                if self.builder.size >= self.pack_size:
                    self.flush()

    def flush(self) -> None:
        if not len(self.builder):
            return
        name, data, table_len = self.builder.finish()
        self.repo.storage.put(layout.pack_path(name), data)
        self.out.add(index.PackRecord(name, len(data), table_len, self.builder.entries))
        self.report.packs_written += 1
        self.report.bytes_written += len(data)
        self.builder = self.repo.new_pack_builder()


def _gone_keys(rec: index.PackRecord, marks: MarkSet, repacked: bool) -> array:
    """Id prefixes of the chunks a removed pack takes with it."""
    return array("Q", (k for k in (_key(e.chunk_id) for e in rec.entries)
                       if not (repacked and marks.has_key(k))))


# -- the run ------------------------------------------------------------------------------------

def collect(repo: Repository, held: locking.Lock, opts: GcOptions | None = None) -> GcReport:
    """Run gc; the caller holds the maintenance lock ``held`` (see ``maintenance_lock``)."""
    opts = opts or GcOptions()
    report = GcReport(dry_run=opts.dry_run)
    view = repo.without_index()
    marks = MarkSet()
    scan = _scan(repo, view, marks)
    packs = scan.packs
    report.backups = len(scan.manifests)
    report.chunks_referenced = len(marks)
    stored = {p.rsplit("/", 1)[-1]: size for p, size in repo.storage.list(layout.DATA_DIR)}
    report.packs_before, report.bytes_before = len(stored), sum(stored.values())
    repack = _choose_repacks(packs, opts.max_unused)
    dead = {n for n, p in packs.items() if not p.live}
    # Rewrite the index when something goes, or when it is in more segments than a rewrite leaves.
    rewrite = bool(dead or repack) or len(scan.live_segments) > 1 + scan.entries // SEGMENT_ENTRIES
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
    gone: dict[str, array] = {}  # removed pack -> prefixes of the chunks it takes away
    if rewrite:
        repacker = _Repacker(view, opts.pack_size, out, report)
        for name in scan.live_segments:
            for rec in view.load_segment(name).packs:
                if rec.name in out.packs or rec.name in gone:
                    continue
                if rec.name in repack:
                    repacker.copy_live(rec, marks)
                    gone[rec.name] = _gone_keys(rec, marks, True)
                    report.packs_repacked += 1
                elif rec.name in dead:
                    gone[rec.name] = _gone_keys(rec, marks, False)
                else:
                    out.add(rec)
        repacker.flush()  # the last partial batch of records goes into phase 2's segment
    if opts.before_sweep is not None:
        opts.before_sweep()

    # Phase 2, alone: what backups committed meanwhile, the replacing segment, then deletions.
    with locking.acquire(repo.storage, exclusive=True, purpose="gc", wait_s=opts.lock_wait_s, also_own=held.name):
        _sweep(repo, view, scan, out if rewrite else None, gone, opts, report)
    return report


def _sweep(repo: Repository, view: Repository, scan: _Scan, out: _SegmentWriter | None, gone: dict[str, array],
           opts: GcOptions, report: GcReport) -> None:
    """Phase 2, under the exclusive lock. ``out`` holds phase 1's segments, or is
    None when phase 1 left the index as it was (then only unindexed packs go)."""
    now_segments = _list_segments(repo)
    mine = set(out.written) if out is not None else set()
    new_segments = [n for n in now_segments if n not in scan.segments and n not in mine]
    carried: list[index.PackRecord] = []  # packs of backups committed during phase 1
    for name in new_segments:
        carried.extend(view.load_segment(name).packs)
    late = _load_manifests(repo, [n for n in repo.manifest_names() if n not in scan.manifests])
    if late and gone:
        _locate_items(view, new_segments + scan.live_segments, late.values())
        late_marks = MarkSet()
        for name, m in late.items():
            mark_backup(view, m, late_marks, f"backup {name[:12]}")
        rescued = {p for p, keys in gone.items() if any(late_marks.has_key(k) for k in keys)}
        for name in sorted({scan.packs[p].segment for p in rescued}):
            carried.extend(r for r in view.load_segment(name).packs if r.name in rescued)
        report.packs_kept_for_new_backups = len(rescued)
    replaced: list[str] = []
    if out is None:
        indexed = set(scan.packs) | {r.name for r in carried}
    else:
        for rec in carried:
            out.add(rec)
        replaced = [n for n in now_segments if n not in mine]
        out.flush(supersedes=replaced)  # the commit point of gc: from here on the old segments are ignored
        report.segments_replaced = len(replaced)
        indexed = out.packs
    stored = {p.rsplit("/", 1)[-1]: size for p, size in repo.storage.list(layout.DATA_DIR)}
    for name in sorted(set(stored) - indexed):
        repo.storage.delete(layout.pack_path(name))
        report.packs_deleted += 1
        report.bytes_deleted += stored[name]
    for name in replaced:
        repo.storage.delete(layout.index_path(name))
    kept = set(stored) & indexed
    report.packs_after = len(kept)
    report.bytes_after = sum(stored[n] for n in kept)
    report.unused_bytes_after = sum(p.total - p.live for n, p in scan.packs.items() if n in kept)
    report.markers_removed = _drop_markers(repo)
    report.temp_files_removed = _drop_temp_files(repo.storage, opts.tmp_max_age_s)
    report.uploads_aborted = abort_stale_writes(repo.storage, opts.tmp_max_age_s)


def _drop_markers(repo: Repository) -> int:
    from dedupe.prune import PROTECT_DIR
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
