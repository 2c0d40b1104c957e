"""``dedupe repair packs``: salvage the intact blobs of damaged packs and drop the rest.

Under the exclusive lock (no backup, gc or other repair runs): every indexed pack (or
those named) is read whole and each blob the index lists for it is opened and re-hashed
(FORMAT.md section 6.3), exactly what ``check --read-data`` does. A pack is damaged when
it is missing, its bytes do not hash to its name, or one of its blobs does not verify.
For each damaged pack, the blobs that verify are copied as they are into new packs; the
others (and every blob of a missing pack) are lost, unless the same chunk is in another
intact pack (FORMAT.md 7.2).

Write order, so that a kill at any point leaves a repository that opens and checks no
worse than before (section 12):

1. the new packs (complete, stored atomically; unindexed until step 2);
2. one index segment listing every pack of the segments that named a damaged pack,
   except the damaged ones, plus the new packs, and superseding those segments (7.3):
   the commit point;
3. the damaged packs are deleted, then the superseded segments.

Killed before 2: the new packs are unindexed leftovers (``check`` notes them, gc
removes them) and nothing else changed. Killed after 2: the damaged packs are
unindexed leftovers, gone at the next gc (``repair index`` could index a damaged one
again if its table still reads: its lost chunks then show as damage in ``check
--read-data`` again and a second ``repair packs`` drops them), and superseded segments
are ignored by every reader and deleted by the next gc or ``repair index``.

The report names the lost chunks and the backups that reference them; ``repair
backups`` rewrites those backups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dedupe.backup.writer import DEFAULT_PACK_SIZE
from dedupe.errors import DedupeError
from dedupe.locking import acquire
from dedupe.maintenance.gc_mark import Record, packed_rows
from dedupe.maintenance.repair import REPAIR_LOCK_WAIT_S, require_whole_index
from dedupe.maintenance.repair_refs import damaged_backups
from dedupe.progress import Progress, ProgressCallback
from dedupe.repository import Repository
from dedupe.storage.base import ObjectNotFound
from repo_format import layout, pack
from repo_format.errors import FormatError


class UnknownPack(DedupeError):
    exit_code = 22


@dataclass
class PackRepairReport:
    damaged_packs: dict[str, str] = field(default_factory=dict)  # pack -> why
    packs_read: int = 0
    chunks_salvaged: int = 0
    lost_chunks: list[str] = field(default_factory=list)  # hex ids: in no intact pack any more
    new_packs: list[str] = field(default_factory=list)
    new_segment: str | None = None
    backups_affected: dict[str, dict[str, object]] = field(default_factory=dict)  # backup id -> what it lacks
    dry_run: bool = False

    def to_json(self) -> dict[str, object]:
        return {"damaged_packs": self.damaged_packs, "packs_read": self.packs_read,
                "chunks_salvaged": self.chunks_salvaged, "lost_chunks": self.lost_chunks,
                "new_packs": self.new_packs, "new_segment": self.new_segment,
                "backups_affected": self.backups_affected, "dry_run": self.dry_run}


def _segments(repo: Repository) -> dict[str, list[Record]]:
    """Every live segment -> the pack records it lists."""
    return {seg: repo.load_segment_packed(seg)[0] for seg in repo.segments}


def _choose(repo: Repository, prefixes: list[str]) -> list[str]:
    if not prefixes:
        return sorted(repo.packs)
    chosen = []
    for p in prefixes:
        hits = [n for n in repo.packs if n.startswith(p.strip().lower())] if p.strip() else []
        if len(hits) != 1:
            raise UnknownPack(f"pack {p!r}: {'no' if not hits else len(hits)} indexed pack(s) start with it"
                              + ("" if hits else " ('dedupe check' names damaged packs)"))
        chosen.append(hits[0])
    return sorted(set(chosen))


class _Salvage:
    """Verified blobs of damaged packs, copied into new packs."""

    def __init__(self, repo: Repository, pack_size: int, dry_run: bool) -> None:
        self.repo, self.pack_size, self.dry_run = repo, pack_size, dry_run
        self.builder = repo.new_pack_builder()
        self.records: list[Record] = []
        self.kept: set[bytes] = set()

    def add(self, cid: bytes, sealed: bytes, raw_len: int) -> None:
        if cid in self.kept:
            return
        self.kept.add(cid)
        self.builder.add(cid, sealed, raw_len)
        if self.builder.size >= self.pack_size:
            self.flush()

    def flush(self) -> None:
        if not len(self.builder):
            return
        name, parts, table_len = self.builder.finish_parts()
        if not self.dry_run:
            self.repo.storage.put(layout.pack_path(name), parts)
        self.records.append((name, self.builder.size, table_len, pack.encode_entries(self.builder.entries)))
        self.builder = self.repo.new_pack_builder()


def _examine(repo: Repository, rec: Record, salvage: _Salvage | None) -> tuple[str | None, set[bytes]]:
    """Read pack ``rec`` whole and verify it: (why it is damaged or None, the ids of the
    blobs that do not verify). With ``salvage``, its verified blobs go there."""
    name = rec[0]
    try:
        data: bytes | None = repo.storage.get(layout.pack_path(name))
    except ObjectNotFound:
        data = None
    why = None if data is not None else "missing"
    if data is not None:
        if len(data) != rec[1]:
            why = f"size {len(data)}, index says {rec[1]}"
        else:
            try:
                pack.check_pack_name(data, name, f"pack {layout.pack_path(name)}")
            except FormatError as e:
                why = str(e)
    bad: set[bytes] = set()
    good: list[tuple[bytes, bytes, int]] = []
    for row in packed_rows(rec[3]):
        cid, off, length = row["id"].tobytes(), int(row["off"]), int(row["len"])
        sealed = data[off:off + length] if data is not None else b""
        try:
            repo.open_chunk(cid, sealed, name)
        except (DedupeError, FormatError) as e:
            bad.add(cid)
            why = why or str(e)
            continue
        good.append((cid, sealed, int(row["raw"])))
    if why is not None and salvage is not None:
        for cid, sealed, raw in good:
            salvage.add(cid, sealed, raw)
    return why, bad


def repair_packs(repo: Repository, prefixes: list[str] | None = None, *, dry_run: bool = False,
                 pack_size: int = DEFAULT_PACK_SIZE, progress: ProgressCallback | None = None,
                 lock_wait_s: float = REPAIR_LOCK_WAIT_S,
                 before_commit: Callable[[], None] | None = None) -> PackRepairReport:
    """Salvage the damaged packs among ``prefixes`` (every indexed pack when empty).
    ``before_commit``: called after the new packs are stored (tests kill the run there)."""
    report = PackRepairReport(dry_run=dry_run)
    with acquire(repo.storage, exclusive=not dry_run, purpose="repair", wait_s=lock_wait_s):
        repo.reload_index()
        require_whole_index(repo)  # else the chunks of its packs look lost and backups look damaged
        chosen = _choose(repo, list(prefixes or []))
        segments = _segments(repo)
        records = {rec[0]: rec for recs in segments.values() for rec in recs}
        salvage = _Salvage(repo, pack_size, dry_run)
        candidates: set[bytes] = set()
        for name in chosen:
            why, bad = _examine(repo, records[name], salvage)
            report.packs_read += 1
            if why is not None:
                report.damaged_packs[name] = why
                candidates |= bad
            if progress is not None:
                progress(Progress("repair", name[:12], 0, None, items=report.packs_read))
        if not report.damaged_packs:
            return report
        salvage.flush()
        report.chunks_salvaged = len(salvage.kept)
        report.new_packs = [r[0] for r in salvage.records]
        damaged = set(report.damaged_packs)
        elsewhere = _held_by(records, damaged, candidates - salvage.kept)
        lost = candidates - salvage.kept - elsewhere
        report.lost_chunks = sorted(c.hex() for c in lost)
        if not dry_run:
            if before_commit is not None:
                before_commit()
            # every segment that lists a damaged pack (a pack may be in two) is replaced
            touched = sorted(seg for seg, recs in segments.items() if any(r[0] in damaged for r in recs))
            kept = list({r[0]: r for seg in touched for r in segments[seg] if r[0] not in damaged}.values())
            report.new_segment = repo.write_segment_packed(kept + salvage.records, touched)  # the commit point
            for name in sorted(damaged):
                repo.storage.delete(layout.pack_path(name))
            for seg in touched:
                repo.storage.delete(layout.index_path(seg))
            repo.reload_index()
            report.backups_affected = {b: lack.to_json() for b, lack in damaged_backups(repo).items()}
        elif lost:
            report.backups_affected = _affected_dry(repo, lost)
    return report


def _held_by(records: dict[str, Record], damaged: set[str], ids: set[bytes]) -> set[bytes]:
    """Which of ``ids`` an intact indexed pack also holds."""
    found: set[bytes] = set()
    if not ids:
        return found
    for name, rec in records.items():
        if name in damaged:
            continue
        found.update(c for c in (r.tobytes() for r in packed_rows(rec[3])["id"]) if c in ids)
    return found


def _affected_dry(repo: Repository, lost: set[bytes]) -> dict[str, dict[str, object]]:
    """``repair packs --dry-run``: the backups that would lack chunks, judged by an index
    view without the lost ones."""
    view = _IndexWithout(repo, lost)
    return {b: lack.to_json() for b, lack in damaged_backups(view).items()}  # type: ignore[arg-type]


class _IndexWithout:
    """``repo`` as if ``lost`` were not in its index (only what ``repair_refs`` asks)."""

    def __init__(self, repo: Repository, lost: set[bytes]) -> None:
        self._repo, self._lost = repo, lost

    def has_chunk(self, cid: bytes) -> bool:
        return cid not in self._lost and self._repo.has_chunk(cid)

    def __getattr__(self, name: str) -> object:
        return getattr(self._repo, name)
