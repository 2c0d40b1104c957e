"""``dedupe repair backups``: rewrite backups that reference lost chunks (chunks no index
segment lists any more, after ``repair packs`` or ``repair index``), as restic's
``repair snapshots`` does, into new manifests marked as repaired (FORMAT.md section 8.4).

A lost content chunk is replaced by a chunk of as many zero bytes (restic truncates or
zero-fills; zeros keep every file's size and every intact byte at its offset, which is
what a disk image, a database file or an LXD export tarball needs to stay usable). Each
replaced piece is named in the manifest's ``repaired`` record, with the file it belongs
to. A lost item chunk takes its items (the files they describe) with it: the item stream
goes on with the next chunk (chunks end between items, section 9.1).

Under the exclusive lock, for each backup: the zero chunks and re-encoded item chunks go
into packs, then one index segment, then the new manifest (its commit point, as for a
backup, section 12). The original is kept unless ``forget``, as restic keeps it unless
``--forget``: a later backup that stores the lost chunks again (self-healing) makes the
original whole again. With ``forget`` the original is removed only after its repaired
manifest is committed (a protected original passes its protection on first).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from dedupe import records
from dedupe.backup.writer import Transaction
from dedupe.errors import DedupeError
from dedupe.locking import acquire
from dedupe.maintenance.repair import REPAIR_LOCK_WAIT_S, require_whole_index
from dedupe.maintenance.repair_refs import item_chunks
from dedupe.repository import Repository
from repo_format import codecs, items, layout, manifest
from repo_format.ids import chunk_id

REPAIRED_TAG = "repaired"


@dataclass
class BackupRepair:
    original: str
    repaired: str | None = None  # the new backup's id (None in a dry run)
    lost: list[list[Any]] = field(default_factory=list)  # [path, offset, length]
    lost_items: int = 0
    lost_item_chunks: int = 0
    forgotten: bool = False

    def to_json(self) -> dict[str, object]:
        return {"original": self.original, "repaired": self.repaired, "lost": [_jsonable(x) for x in self.lost],
                "lost_items": self.lost_items, "lost_item_chunks": self.lost_item_chunks,
                "forgotten": self.forgotten}


@dataclass
class BackupsRepairReport:
    backups: list[BackupRepair] = field(default_factory=list)
    checked: int = 0
    dry_run: bool = False

    def to_json(self) -> dict[str, object]:
        return {"backups": [b.to_json() for b in self.backups], "checked": self.checked, "dry_run": self.dry_run}


def _jsonable(piece: list[Any]) -> list[Any]:
    path = piece[0]
    return [path.decode("utf-8", "backslashreplace") if isinstance(path, bytes) else path, *piece[1:]]


def describe(m: manifest.Manifest) -> dict[str, Any] | None:
    """A repaired backup's record, JSON-able (for list, show and restore)."""
    if m.repaired is None:
        return None
    r = m.repaired
    return {"of": r.get("of"), "time_ns": r.get("time_ns"), "lost": [_jsonable(list(x)) for x in r.get("lost", [])],
            "lost_items": r.get("lost_items", 0), "lost_item_chunks": r.get("lost_item_chunks", 0)}


def restore_warning(m: manifest.Manifest, backup_id: str) -> str | None:
    """The warning a restore of a repaired backup gives (None for any other backup)."""
    d = describe(m)
    if d is None:
        return None
    files = sorted({p for p, _o, _n in d["lost"]})
    named = ", ".join(repr(p) if p else "(the stream)" for p in files[:5]) + (" ..." if len(files) > 5 else "")
    return (f"backup {backup_id[:12]} was repaired from {str(d['of'])[:12]}: "
            f"{sum(n for _p, _o, n in d['lost'])} byte(s) in {len(d['lost'])} piece(s) are zeros"
            + (f" ({named})" if files else "")
            + (f"; {d['lost_items']} item(s) are missing" if d["lost_items"] else ""))


class _Rewriter:
    """One backup's item stream with the lost pieces replaced."""

    def __init__(self, repo: Repository, txn: Transaction | None) -> None:
        self.repo, self.txn = repo, txn
        self.zero_ids: dict[int, bytes] = {}

    def zero_chunk(self, n: int) -> bytes:
        cid = self.zero_ids.get(n)
        if cid is None:
            zeros = bytes(n)
            cid = self.zero_ids[n] = chunk_id(self.repo.id_key, zeros)
            if self.txn is not None and not self.txn.known(cid):
                self.txn.add(cid, self.repo.seal_chunk(cid, zeros, codecs.DEFAULT_ZSTD_LEVEL), n)
        return cid

    def store_items(self, its: list[dict[str, Any]]) -> tuple[bytes, int]:
        piece = b"".join(items.encode_item(i) for i in its)
        cid = chunk_id(self.repo.id_key, piece)
        if self.txn is not None and not self.txn.known(cid):
            self.txn.add(cid, self.repo.seal_chunk(cid, piece, codecs.DEFAULT_ZSTD_LEVEL), len(piece))
        return cid, len(piece)

    def patch(self, item: dict[str, Any], at: int, out: BackupRepair) -> tuple[bool, int]:
        """Replace the lost refs of ``item`` (``at``: its content's stream offset, for
        ``d`` and ``t`` items); returns (changed, the item's length in the stream)."""
        k = items.kind(item)
        in_stream = k in (items.ITEM_DATA, items.ITEM_TAR_TAIL)
        path = "" if in_stream else items.entry_of(item).get("p", "")
        refs = items.chunk_refs(item)
        offset = at if in_stream else 0
        changed = False
        for i, (cid, n) in enumerate(refs):
            if not self.repo.has_chunk(bytes(cid)):
                refs[i] = [self.zero_chunk(int(n)), int(n)]
                out.lost.append([path, offset, int(n)])
                changed = True
            offset += int(n)
        length = sum(int(n) for _c, n in refs)
        if k == items.ITEM_TAR_MEMBER:
            length += len(items.member_header(item)) + len(items.member_padding(item))
        return changed, length


def _rewrite(repo: Repository, name: str, m: manifest.Manifest, dry_run: bool, forget: bool,
             protected: set[str]) -> BackupRepair | None:
    """Rewrite backup ``name`` if it lacks chunks (None when it does not)."""
    out = BackupRepair(name)
    txn = None if dry_run else Transaction(repo)
    w = _Rewriter(repo, txn)
    new_items: list[tuple[bytes, int]] = []
    count = stream_len = 0
    try:
        for cid, n, its in item_chunks(repo, m, f"backup {name[:12]}"):
            if its is None:
                out.lost_item_chunks += 1
                continue
            changed = False
            for item in its:
                c, length = w.patch(item, stream_len, out)
                changed |= c
                if items.kind(item) in (items.ITEM_DATA, items.ITEM_TAR_MEMBER, items.ITEM_TAR_TAIL):
                    stream_len += length
            count += len(its)
            new_items.append(w.store_items(its) if changed else (cid, n))
        if not (out.lost or out.lost_item_chunks):
            if txn is not None:
                txn.abort()
            return None
        out.lost_items = max(0, m.item_count - count)
        if txn is None:
            return out
        record = {"of": name, "time_ns": time.time_ns(), "lost": out.lost, "lost_items": out.lost_items,
                  "lost_item_chunks": out.lost_item_chunks}
        size = stream_len if (out.lost_item_chunks and m.kind != manifest.KIND_DIR) else m.size
        new = manifest.Manifest(kind=m.kind, group=m.group, time_ns=m.time_ns, host=m.host, run=m.run, size=size,
                                items=new_items, item_count=count, stream_b3=None, stats=m.stats, meta=m.meta,
                                tags=[*m.tags, *([] if REPAIRED_TAG in m.tags else [REPAIRED_TAG])],
                                repaired=record)
        out.repaired = txn.commit(new)  # the commit point
    except BaseException:
        if txn is not None:
            txn.abort()
        raise
    records.update_seen(repo.config.repo_id, added={out.repaired: [m.group, m.time_ns]})
    if name in protected:
        repo.storage.put(layout.protect_path(out.repaired), b"")
    if forget:
        repo.storage.delete(layout.manifest_path(name))
        if name in protected:
            repo.storage.delete(layout.protect_path(name))
        records.update_seen(repo.config.repo_id, removed=[name])
        out.forgotten = True
    return out


def repair_backups(repo: Repository, prefixes: list[str] | None = None, *, dry_run: bool = False,
                   forget: bool = False, lock_wait_s: float = REPAIR_LOCK_WAIT_S) -> BackupsRepairReport:
    """Rewrite the backups among ``prefixes`` (every backup when empty) that lack chunks."""
    report = BackupsRepairReport(dry_run=dry_run)
    with acquire(repo.storage, exclusive=not dry_run, purpose="repair", wait_s=lock_wait_s):
        repo.reload_index()
        require_whole_index(repo)
        names = [repo.resolve_backup_id(p) for p in prefixes] if prefixes else repo.manifest_names()
        protected = {p.rsplit("/", 1)[-1] for p, _ in repo.storage.list(layout.PROTECT_DIR)}
        for name in names:
            try:
                m = repo.load_manifest(name)
            except DedupeError:
                if prefixes:
                    raise
                continue  # a damaged manifest: check names it, forget removes it
            report.checked += 1
            done = _rewrite(repo, name, m, dry_run, forget, protected)
            if done is not None:
                report.backups.append(done)
    return report
