"""``dedupe repair index``: rebuild what damaged index segments held from the packs'
own tables (every pack carries one, FORMAT.md section 6), so that one flipped byte in a
segment loses nothing.

Under the exclusive lock: load the index, skipping damaged segments; read the table of
every stored pack that no intact segment indexes (the damaged segments' packs, and any
left by an interrupted backup); write one segment indexing them that supersedes the
damaged segments (FORMAT.md section 7.3), then delete those. Interrupted after the
write, the damaged segments are superseded leftovers that the next load skips and the
next repair deletes; before it, nothing has changed. A pack whose table is itself
damaged is named and left alone (its chunks stay unknown: a later backup that contains
them stores them again).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dedupe.errors import DedupeError
from dedupe.locking import acquire
from dedupe.repository import Repository
from repo_format import index, layout, pack
from repo_format.errors import FormatError

REPAIR_LOCK_WAIT_S = 60.0


class IndexDamaged(DedupeError):
    """Damaged index segments make chunks look lost that ``repair index`` would find:
    ``repair packs`` and ``repair backups`` refuse until it ran."""

    exit_code = 82


def require_whole_index(repo: Repository) -> None:
    if repo.damaged_segments:
        raise IndexDamaged(f"{len(repo.damaged_segments)} index segment(s) are damaged: chunks they listed would "
                           f"look lost; run 'dedupe repair index' first")


@dataclass
class IndexRepairReport:
    damaged_segments: list[str] = field(default_factory=list)  # removed (superseded by the new one)
    packs_indexed: int = 0
    chunks_indexed: int = 0
    new_segment: str | None = None
    unreadable_packs: dict[str, str] = field(default_factory=dict)  # pack -> why its table cannot be read
    dry_run: bool = False

    def to_json(self) -> dict[str, object]:
        return {"damaged_segments": self.damaged_segments, "packs_indexed": self.packs_indexed,
                "chunks_indexed": self.chunks_indexed, "new_segment": self.new_segment,
                "unreadable_packs": self.unreadable_packs, "dry_run": self.dry_run}


def read_table(repo: Repository, name: str, size: int) -> index.PackRecord:
    """A stored pack's table, read from its end (trailer, then table), as an index record."""
    what = f"pack {layout.pack_path(name)}"
    try:
        trailer = repo.read_pack_range(name, size - pack.TRAILER_LEN, pack.TRAILER_LEN) \
            if size >= pack.TRAILER_LEN else b""
        table_len = pack.table_len_from_trailer(trailer, size, what)
    except FormatError as e:
        raise DedupeError(str(e)) from None
    entries = repo.pack_table(name, repo.read_pack_range(name, size - table_len, table_len), size)
    return index.PackRecord(name, size, table_len, entries)


def repair_index(repo: Repository, dry_run: bool = False, lock_wait_s: float = REPAIR_LOCK_WAIT_S) -> IndexRepairReport:
    report = IndexRepairReport(dry_run=dry_run)
    with acquire(repo.storage, exclusive=not dry_run, purpose="repair", wait_s=lock_wait_s):
        repo.reload_index()
        listed = {path.rsplit("/", 1)[-1] for path, _ in repo.storage.list(layout.INDEX_DIR)}
        # every listed segment that is not live is damaged, or superseded (a leftover of an
        # interrupted repair or compaction): under the exclusive lock, both can go
        leftovers = sorted(listed - set(repo.segments))
        report.damaged_segments = sorted(repo.damaged_segments)
        records = []
        for path, size in sorted(repo.storage.list(layout.DATA_DIR)):
            name = path.rsplit("/", 1)[-1]
            if name in repo.packs:
                continue
            try:
                rec = read_table(repo, name, size)
            except DedupeError as e:
                report.unreadable_packs[name] = str(e)
                continue
            records.append(rec)
            report.packs_indexed += 1
            report.chunks_indexed += len(rec.entries)
        if dry_run or not (records or leftovers):
            return report
        report.new_segment = repo.write_segment(index.IndexSegment(records, leftovers))
        for name in leftovers:
            repo.storage.delete(layout.index_path(name))
        repo.reload_index()
    return report

